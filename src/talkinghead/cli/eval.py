"""``talkinghead eval`` (being written)."""


def add_parsers(sub):
    return None
