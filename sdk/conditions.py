"""When a device may train: probes the app provides, and what it requires of them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

PROBES = ("is_idle", "is_charging", "is_unmetered", "battery_level")


@dataclass
class DeviceConditions:
    """Each probe is a function the SDK calls when it decides (e.g. ``battery.is_charging``, not its value).

    A required condition whose probe is missing counts as unmet.
    """

    is_idle: Callable[[], bool] | None = None
    is_charging: Callable[[], bool] | None = None
    is_unmetered: Callable[[], bool] | None = None
    battery_level: Callable[[], float] | None = None  # 0..1
    require_idle: bool = False
    require_charging: bool = False
    require_unmetered: bool = False
    min_battery: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in PROBES and value is not None and not callable(value):
                raise TypeError(f"DeviceConditions.{field.name} must be a function that the SDK calls when it "
                                f"decides (e.g. battery.is_charging, or lambda: battery.charging), not the "
                                f"{type(value).__name__} {value!r}")
        if not 0 <= self.min_battery <= 1:
            raise ValueError(f"DeviceConditions.min_battery is a fraction from 0 to 1, got {self.min_battery}")

    def blocked_by(self) -> str | None:
        """The first unmet condition, or None."""
        if self.require_idle and not (self.is_idle and self.is_idle()):
            return "in use"
        if self.require_charging and not (self.is_charging and self.is_charging()):
            return "not charging"
        if self.require_unmetered and not (self.is_unmetered and self.is_unmetered()):
            return "metered network"
        if self.min_battery > 0 and self.battery_level and self.battery_level() < self.min_battery:
            return f"battery below {self.min_battery:.0%}"
        return None

    def precompute_blocked_by(self) -> str | None:
        """Why work ahead of a round (computing randomisers) must wait: not charging or not idle, or None.

        A probe the app does not provide does not block.
        """
        if self.is_charging and not self.is_charging():
            return "not charging"
        if self.is_idle and not self.is_idle():
            return "not idle"
        return None
