"""Helpers for the viseme tests: the lip-sync measurement of :mod:`talkinghead.eval` (its one home)."""

from __future__ import annotations

from talkinghead.eval import best_lag_correlation, lip_apertures, silent_stretches

__all__ = ["best_lag_correlation", "lip_apertures", "silent_stretches"]
