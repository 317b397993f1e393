"""One exception type for problems the user can fix; the CLI turns it into a one-line reason."""


class MmrecError(Exception):
    """Bad input, a failed download, a missing file: anything that should end in a clear message.

    The message must name the file, row or field at fault, because the CLI prints it alone.
    """
