"""Words for the synthetic dataset: titles, genres, synopses and tags driven by the hidden model.

Each topic has its own vocabulary (roles, places, things, verbs) and its usual MovieLens genres;
each latent factor has a pair of adjective lists, one per sign. A synopsis mixes words of the
movie's topic and of its strongest factors into ordinary sentences, so a text model can recover
both, while words from other topics and filler keep it noisy.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip


@dataclass(frozen=True)
class Theme:
    name: str
    genres: tuple[str, ...]  # most likely first
    roles: tuple[str, ...]
    places: tuple[str, ...]
    things: tuple[str, ...]
    verbs: tuple[str, ...]  # bare infinitives: "... must {verb} ..."


THEMES: tuple[Theme, ...] = (
    Theme(
        "crime", ("Crime", "Thriller", "Drama"),
        ("detective", "getaway driver", "mob accountant", "pickpocket", "district attorney",
         "informant", "safecracker", "corrupt cop"),
        ("the docks", "a casino", "the precinct", "a rain-soaked city", "an abandoned warehouse",
         "the border town", "a penthouse"),
        ("the stolen diamonds", "a ledger", "the ransom", "a loaded revolver", "the heist plan",
         "a wiretap", "the getaway car", "a briefcase of cash"),
        ("rob", "frame", "outsmart", "launder", "betray", "bribe"),
    ),
    Theme(
        "space", ("Sci-Fi", "Adventure", "Action"),
        ("astronaut", "android", "starship captain", "engineer", "alien envoy", "navigator",
         "cyborg", "mission commander"),
        ("a distant moon", "the orbital station", "a derelict freighter", "Mars",
         "the edge of the galaxy", "a terraformed colony", "the launch bay"),
        ("the reactor core", "a wormhole", "the distress signal", "an alien artifact",
         "the oxygen supply", "a cryosleep pod", "the warp drive", "a rogue satellite"),
        ("colonize", "decode", "repair", "evacuate", "terraform", "launch"),
    ),
    Theme(
        "romance", ("Romance", "Drama", "Comedy"),
        ("bride", "florist", "widower", "violinist", "matchmaker", "former sweetheart", "baker",
         "wedding planner"),
        ("Paris", "a seaside village", "a vineyard", "a crowded bakery", "the train station",
         "a summer cottage", "a rooftop garden"),
        ("a love letter", "the engagement ring", "a wedding invitation", "an old photograph",
         "a bouquet of roses", "the first dance", "a forgotten promise", "a shared umbrella"),
        ("marry", "reunite", "confess", "elope", "court", "forgive"),
    ),
    Theme(
        "war", ("War", "Drama", "Action"),
        ("sergeant", "field medic", "pilot", "radio operator", "general", "sniper",
         "resistance fighter", "prisoner of war"),
        ("the trenches", "a bombed-out village", "the front line", "a submarine",
         "an occupied city", "the beachhead", "a prison camp"),
        ("the battalion", "a coded message", "the bridge", "the ammunition depot",
         "the enemy lines", "a field hospital", "the last convoy", "a secret map"),
        ("defend", "ambush", "liberate", "retreat from", "sabotage", "surrender"),
    ),
    Theme(
        "horror", ("Horror", "Thriller", "Mystery"),
        ("babysitter", "exorcist", "caretaker", "medium", "night nurse", "gravedigger",
         "hitchhiker", "paranormal investigator"),
        ("a haunted house", "the cellar", "an asylum", "a fog-bound cemetery",
         "a cabin in the woods", "the attic", "a deserted motel"),
        ("a cursed doll", "the ritual", "a demon", "the bloodstains", "an ancient curse",
         "a possessed mirror", "the séance", "a masked killer"),
        ("exorcise", "survive", "summon", "bury", "escape", "banish"),
    ),
    Theme(
        "family", ("Animation", "Children", "Comedy", "Fantasy"),
        ("talking rabbit", "young inventor", "puppy", "grandmother", "toy robot", "little dragon",
         "schoolgirl", "clumsy penguin"),
        ("a toy shop", "the backyard", "an enchanted forest", "a candy factory",
         "the school playground", "a treehouse", "the zoo"),
        ("a magic balloon", "the lost kitten", "a birthday party", "a treasure chest",
         "the science fair", "a friendly monster", "the snowman", "a flying bicycle"),
        ("rescue", "befriend", "build", "share", "find", "cheer up"),
    ),
    Theme(
        "western", ("Western", "Action", "Adventure"),
        ("sheriff", "outlaw", "rancher", "bounty hunter", "gunslinger", "cattle rustler",
         "stagecoach driver", "saloon owner"),
        ("a dusty frontier town", "the canyon", "a cattle ranch", "the railroad camp", "a saloon",
         "the desert", "the silver mine"),
        ("the gold shipment", "a wanted poster", "the cattle herd", "a six-shooter",
         "the stagecoach", "the water rights", "a sheriff's badge", "the last train"),
        ("hunt down", "duel", "ride after", "hang", "stampede", "track"),
    ),
    Theme(
        "music", ("Musical", "Drama", "Romance"),
        ("singer", "drummer", "conductor", "dancer", "songwriter", "talent scout",
         "jazz pianist", "choir teacher"),
        ("Broadway", "a smoky jazz club", "the opera house", "a recording studio",
         "the dance academy", "a music festival", "Nashville"),
        ("the big audition", "a record deal", "the final concert", "a lost melody",
         "the talent show", "an old guitar", "the opening night", "a love song"),
        ("perform", "rehearse", "compose", "audition for", "sing", "tour"),
    ),
    Theme(
        "fantasy", ("Fantasy", "Adventure", "Action"),
        ("wizard", "knight", "elf princess", "blacksmith", "sorceress", "dragon slayer",
         "exiled king", "thief"),
        ("an enchanted kingdom", "the dark tower", "the misty mountains", "a dwarven mine",
         "the royal court", "an elven forest", "the underworld"),
        ("the crown", "a magic sword", "the dragon's egg", "an ancient prophecy", "the spellbook",
         "the cursed ring", "a phoenix feather", "the throne"),
        ("vanquish", "enchant", "reclaim", "forge", "break the spell on", "seize"),
    ),
    Theme(
        "comedy", ("Comedy", "Romance", "Drama"),
        ("slacker", "office manager", "substitute teacher", "stand-up comic", "best man",
         "roommate", "neighbour", "intern"),
        ("a small town", "the suburbs", "a failing restaurant", "the office", "a road trip",
         "a high school reunion", "a summer camp"),
        ("the promotion", "a bachelor party", "a rented tuxedo", "the family reunion",
         "a talent contest", "the wrong suitcase", "a fake identity", "the lottery ticket"),
        ("impress", "fake", "win back", "pretend to be", "plan", "crash"),
    ),
    Theme(
        "nature", ("Documentary", "Adventure", "Drama"),
        ("marine biologist", "park ranger", "mountaineer", "wildlife photographer", "climber",
         "filmmaker", "farmer", "explorer"),
        ("the Arctic", "the Amazon rainforest", "a coral reef", "the Serengeti", "the Himalayas",
         "a remote island", "the ocean floor"),
        ("the migration", "a glacier", "the last wild tigers", "a whale", "the wildfire",
         "the rainy season", "an endangered species", "the harvest"),
        ("document", "protect", "climb", "study", "follow", "explore"),
    ),
    Theme(
        "noir", ("Film-Noir", "Mystery", "Crime"),
        ("private eye", "femme fatale", "night-club singer", "newspaper reporter",
         "crooked lawyer", "insurance investigator", "amnesiac", "hired gun"),
        ("a smoky bar", "the waterfront", "a neon-lit alley", "a hotel lobby",
         "the newspaper office", "a boarding house", "the racetrack"),
        ("a double-cross", "an insurance policy", "the missing heiress", "a forged will",
         "a matchbook", "an anonymous letter", "the alibi", "a pearl necklace"),
        ("investigate", "blackmail", "double-cross", "shadow", "confront", "unmask"),
    ),
)  # fmt: skip

# One adjective list per sign of each latent factor: (positive pole, negative pole).
FACTOR_POLES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("hopeful", "uplifting", "warm", "joyful", "tender"),
     ("bleak", "grim", "somber", "bitter", "haunting")),
    (("explosive", "frantic", "breakneck", "relentless", "thrilling"),
     ("quiet", "slow-burning", "meditative", "patient", "gentle")),
    (("witty", "playful", "absurd", "zany", "lighthearted"),
     ("serious", "earnest", "solemn", "weighty", "sober")),
    (("epic", "sweeping", "grand", "lavish", "spectacular"),
     ("intimate", "modest", "small", "personal", "spare")),
    (("violent", "brutal", "savage", "bloody", "ruthless"),
     ("kind", "peaceful", "innocent", "wholesome", "soft")),
    (("strange", "surreal", "dreamlike", "eerie", "uncanny"),
     ("ordinary", "realistic", "everyday", "grounded", "plain")),
    (("romantic", "passionate", "yearning", "sensual", "lovesick"),
     ("lonely", "detached", "cold", "solitary", "aloof")),
    (("clever", "intricate", "puzzling", "twisty", "cerebral"),
     ("simple", "straightforward", "breezy", "easygoing", "familiar")),
)  # fmt: skip

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "Daniel", "Elena", "Frank", "Grace", "Henry", "Iris", "Jack", "Kate",
    "Leo", "Maya", "Nick", "Olivia", "Paul", "Rosa", "Sam", "Tom", "Vera", "José", "Zoë",
    "Björn", "Amélie", "Łukasz", "Søren", "Renée", "Chloé", "Jürgen", "Inés", "Noor", "Kenji",
)  # fmt: skip
LAST_NAMES = (
    "Miller", "Carter", "Nguyen", "Okafor", "Rossi", "Walsh", "Keller", "Hart", "Brennan",
    "Morgan", "Müller", "Núñez", "O'Brien", "Dvořák", "Sørensen", "Lefèvre", "Tanaka", "Silva",
)  # fmt: skip
TITLE_ADJECTIVES = (
    "Silent", "Last", "Broken", "Golden", "Hidden", "Long", "Dark", "Bright", "Lost", "Secret",
    "Wild", "Burning", "Distant", "Crimson", "Frozen", "Quiet", "Endless", "Little", "Seventh",
)  # fmt: skip
TITLE_NOUNS = (
    "River", "Night", "Road", "House", "Storm", "Summer", "Garden", "Shadow", "Heart", "Winter",
    "Kingdom", "Line", "Harbor", "Promise", "Sky", "Mirror", "Island", "Game", "Letter",
)  # fmt: skip
FOREIGN_TITLES = (
    "La Vie Étrange", "El Niño Perdido", "Der Schöne Tag", "Les Rêves d'Été", "Øjeblikket",
    "Ça Ira", "Los Años Dorados", "Straße der Nacht", "L'Été Dernier", "Noč in Dan",
)  # fmt: skip
FILLER_SENTENCES = (
    "Nothing is quite what it seems.",
    "It is a story about trust, family and the choices that define us.",
    "Time is running out.",
    "Old secrets do not stay buried for long.",
    "Some debts can never be repaid.",
    "Based on a story that has been told for generations.",
)

# Sentence templates; slots are filled with the movie's words.
TEMPLATES = (
    "{Name}, a {adj} {role}, must {verb} {thing} in {place}.",
    "When {thing} goes missing, {Name} leaves {place} for good.",
    "Years later, {Name} returns to {place} to face a {adj} {role}.",
    "What begins as a {adj} search for {thing} becomes something far more {adj}.",
    "Along the way {Name} meets a {role} who knows the truth about {thing}.",
    "Set in {place}, this {adj} tale follows {Name} and {Name2}.",
    "{Name} has one week to {verb} {thing} before {place} is lost forever.",
    "Nobody in {place} believes {Name}, except a {adj} {role}.",
    "The film is a {adj}, {adj} portrait of life in {place}.",
    "Everything changes the night {Name} finds {thing}.",
    "Together, {Name} and a {role} set out to {verb} {thing}, whatever the price.",
    "A {adj} {role} named {Name} tries to {verb} {thing}.",
)

# Tone sentences: the adjectives of the movie's strongest factors, strongest first.
TONE_TEMPLATES = (
    "The mood is {tone0}, {tone1} and {tone2}.",
    "Critics called it {tone0} and {tone1}, at times {tone2}.",
    "A {tone0}, {tone1} and {tone2} film.",
    "Expect something {tone0}, {tone1}, even {tone2}.",
)

_AN = re.compile(r"\b([Aa]) ([aeiouAEIOU])")  # "a" before a vowel becomes "an"


def check_topics(n_topics: int, n_factors: int) -> None:
    from mmrec.errors import MmrecError

    if not 1 <= n_topics <= len(THEMES):
        raise MmrecError(f"n_topics: {n_topics} is out of range 1..{len(THEMES)}")
    if n_factors < 1:
        raise MmrecError(f"n_factors: {n_factors} must be at least 1")


def _rng(seed: int, movie_id: int, salt: int) -> random.Random:
    return random.Random((seed * 1_000_003 + movie_id) * 16 + salt)


def movie_genres(seed: int, movie_id: int, topic: int) -> list[str]:
    """Mostly the topic's first genres, sometimes another one; rarely none (as in MovieLens)."""
    r = _rng(seed, movie_id, 1)
    if r.random() < 0.005:
        return []
    own = THEMES[topic].genres
    picked = {own[0]} if r.random() < 0.85 else {r.choice(own)}
    for g in own[1:]:
        if r.random() < 0.4:
            picked.add(g)
    if r.random() < 0.15:
        picked.add(r.choice(GENRES))
    return sorted(picked)


def movie_title(seed: int, movie_id: int, topic: int, year: int) -> str:
    """A MovieLens-style title: leading articles moved to the end, year in parentheses."""
    r = _rng(seed, movie_id, 2)
    theme = THEMES[topic]
    thing = _title_case(_strip_article(r.choice(theme.things)))
    adj, noun = r.choice(TITLE_ADJECTIVES), r.choice(TITLE_NOUNS)
    kind = r.random()
    if kind < 0.3:
        title = f"{adj} {noun}, The"
    elif kind < 0.45:
        title = f"{noun} of {thing}"
    elif kind < 0.55:
        title = f"{r.choice(FIRST_NAMES)}'s {noun}"
    elif kind < 0.7:
        title = f"{adj} {thing}"
    elif kind < 0.8:
        title = f"{noun} in {_title_case(_strip_article(r.choice(theme.places)))}, A"
    elif kind < 0.86:
        title = f"{r.choice(FOREIGN_TITLES)} ({adj} {noun}, The)"
    elif kind < 0.93:
        title = f"{thing}, {noun} and {adj} {r.choice(TITLE_NOUNS)}"
    else:
        title = f"{adj} {noun} {r.choice(('II', '2', 'Returns', 'Forever'))}"
    return f"{title} ({year})" if year else title


def synopsis(
    seed: int, movie_id: int, topic: int, factors: list[float], noise: float, n_topics: int
) -> str:
    """A few sentences whose content words come from the topic and the strongest factors."""
    r = _rng(seed, movie_id, 3)
    # noisy view of the factors decides which adjectives appear
    seen = [f + r.gauss(0.0, noise) for f in factors[: len(FACTOR_POLES)]]
    weights = [v * v + 0.05 for v in seen]
    names = [f"{r.choice(FIRST_NAMES)}", f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}"]
    stray = min(0.9, 0.25 * noise)  # share of topic words borrowed from another topic

    def theme() -> Theme:
        return THEMES[r.randrange(n_topics)] if r.random() < stray else THEMES[topic]

    def adj() -> str:
        i = r.choices(range(len(seen)), weights)[0]
        return r.choice(FACTOR_POLES[i][0] if seen[i] >= 0 else FACTOR_POLES[i][1])

    sentences = []
    for _ in range(r.choice((2, 3, 3, 4, 4, 5, 6, 7))):
        if r.random() < 0.12:
            sentences.append(r.choice(FILLER_SENTENCES))
            continue
        sentences.append(
            _fill(
                r.choice(TEMPLATES),
                Name=names[0] if r.random() < 0.7 else names[1],
                Name2=r.choice(FIRST_NAMES),
                adj=adj,
                role=lambda: r.choice(theme().roles),
                place=lambda: r.choice(theme().places),
                thing=lambda: r.choice(theme().things),
                verb=lambda: r.choice(theme().verbs),
            )
        )
    # one sentence on the tone names the poles of the strongest (noisily seen) factors, as
    # reviews and overviews do; without it the adjectives are too few and too scattered for a
    # sentence encoder to recover the factors, and content tells little beyond the genres
    strongest = sorted(range(len(seen)), key=lambda i: -abs(seen[i]))[:3]
    tone = [r.choice(FACTOR_POLES[i][0] if seen[i] >= 0 else FACTOR_POLES[i][1]) for i in strongest]
    tone += tone[-1:] * (3 - len(tone))  # fewer than three factors: repeat the last
    slots = {f"tone{k}": word for k, word in enumerate(tone)}
    sentences.insert(r.randrange(len(sentences) + 1), _fill(r.choice(TONE_TEMPLATES), **slots))
    text = _AN.sub(r"\1n \2", " ".join(sentences))
    return text[0].upper() + text[1:]


def movie_tags(seed: int, movie_id: int, topic: int, factors: list[float]) -> list[str]:
    """The few tags users put on this movie: topic words and its strongest adjectives."""
    r = _rng(seed, movie_id, 4)
    theme = THEMES[topic]
    order = sorted(range(min(len(factors), len(FACTOR_POLES))), key=lambda i: -abs(factors[i]))
    top = [FACTOR_POLES[i][0 if factors[i] >= 0 else 1] for i in order[:2]]
    options = [
        _strip_article(r.choice(theme.things)),
        r.choice(top[0]),
        theme.name,
        _strip_article(r.choice(theme.places)),
    ]
    if len(top) > 1:
        options.append(f"{r.choice(top[0])}, {r.choice(top[1])}")  # a tag with a comma
    if r.random() < 0.1:
        options.append(f'"{r.choice(top[0])}"')  # users do type quotes
    return [o.capitalize() if r.random() < 0.2 else o for o in options]


def _fill(template: str, **slots: object) -> str:
    out = []
    rest = template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        key, _, rest = tail.partition("}")
        value = slots[key]
        out.append(head)
        out.append(value() if callable(value) else str(value))
    out.append(rest)
    return "".join(out)


def _strip_article(words: str) -> str:
    for article in ("the ", "a ", "an "):
        if words.startswith(article):
            return words[len(article) :]
    return words


def _title_case(words: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in words.split())
