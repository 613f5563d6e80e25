"""A bad command line as a user sees it: exit code 2 and one line on stderr, `diffprune: error: ...`."""

from diffprune.cli import main


def one_line_error(argv: list[str], capsys) -> str:
    """Runs `diffprune ARGV` in-process; checks it fails with exit code 2 and exactly one line on stderr, which
    starts `diffprune: error:`; returns that line."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffprune: error:"), lines
    return lines[0]
