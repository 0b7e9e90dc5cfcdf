"""Device conditions are checked when made; the schedule takes part only when idle, charging and unmetered."""

import pytest

from device_sim import synthetic
from sdk.client import DeviceConditions, FedWearClient
from sdk.schedule import ParticipationSchedule


def test_conditions_refuse_values_where_probes_belong():
    with pytest.raises(TypeError, match=r"DeviceConditions.is_charging must be a function .* not the bool True"):
        DeviceConditions(is_charging=True, require_charging=True)
    with pytest.raises(ValueError, match="min_battery is a fraction"):
        DeviceConditions(min_battery=30)
    assert DeviceConditions(is_idle=lambda: True, require_idle=True).blocked_by() is None


class Phone:
    """What the app's probes read."""

    idle = charging = unmetered = False

    def is_idle(self):
        return self.idle

    def is_charging(self):
        return self.charging

    def is_unmetered(self):
        return self.unmetered


def test_schedule_takes_part_once_per_round_only_when_idle_charging_and_unmetered(cloud, bundle_dir, tmp_path):
    job = cloud.create_job(bundle_dir, min_devices=2, max_devices=3)
    phone, now = Phone(), [0.0]
    client = FedWearClient(cloud.url, cloud.token(job["id"]), tmp_path / "device", conditions=DeviceConditions(
        is_idle=phone.is_idle, is_charging=phone.is_charging, is_unmetered=phone.is_unmetered))
    device = synthetic.generate(subjects=1, executions=2, seed=1).devices[0]
    reads = []

    def training_data():
        reads.append(1)
        return device.windows, device.labels

    schedule = ParticipationSchedule(client, training_data, every_s=60, clock=lambda: now[0])
    for idle, charging, unmetered, reason in [(False, True, True, "in use"), (True, False, True, "not charging"),
                                              (True, True, False, "metered network")]:
        phone.idle, phone.charging, phone.unmetered = idle, charging, unmetered
        assert schedule.tick().reason == reason
    assert not (tmp_path / "device" / "credentials.json").exists() and not reads  # nothing sent, nothing read
    phone.idle = phone.charging = phone.unmetered = True
    assert schedule.tick().status == "uploaded"
    now[0] = 59
    assert schedule.tick() is None  # too soon
    now[0] = 61
    assert schedule.tick().status == "already_uploaded"  # the same round: no second upload
    assert cloud.job(job["id"])["rounds"][0]["contributors"] == 1


def test_schedule_needs_the_three_probes(tmp_path):
    client = FedWearClient("http://127.0.0.1:9", "unused", tmp_path, conditions=DeviceConditions(is_charging=lambda: True))
    with pytest.raises(ValueError, match="probes is_idle, is_unmetered"):
        ParticipationSchedule(client, lambda: None)
