"""``talkinghead eval``: placeholder replaced below."""
