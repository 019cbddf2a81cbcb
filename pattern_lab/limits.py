"""Sizes the site accepts, in one place."""

# A scenario or lesson file, however it arrives: pasted on a lab page,
# uploaded there or in the instructors' library, typed in the editor, or
# read from the lesson library.
SCENARIO_MAX_BYTES = 200_000
SCENARIO_MAX_KB = SCENARIO_MAX_BYTES // 1000


def too_big(text: str) -> bool:
    """Whether a scenario's text is over the limit (counted in UTF-8 bytes)."""
    return len(text.encode("utf-8", "replace")) > SCENARIO_MAX_BYTES
