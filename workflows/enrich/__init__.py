"""The enrich stage: posters and synopses for real MovieLens movies (entry point: stage.enrich)."""
