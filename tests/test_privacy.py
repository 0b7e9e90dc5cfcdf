"""Client-side differential privacy: clipping, the noise a decrypted round carries, the budget, refusals."""

import json
import math

import numpy as np
import pytest
import requests
from dp_accounting.rdp import RdpAccountant
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import norm

import dp_accounting
from cloud.cli import job_text
from cloud.privacy_budget import calibrate, epsilon
from sdk.bundle import job_form_files
from sdk.crypto.params import CryptoParams
from sdk.privacy import (CLIP_MARGIN, MIN_STEPS, PrivacyError, PrivacySettings, clip_to_norm, prepare_update,
                         privatise)
from tests.cloud_servers import encoder_for

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 300), elements=finite), st.floats(1e-3, 1e3))
def test_clipping_bounds_the_norm_and_keeps_an_update_within_it(update, clip_norm):
    clipped = clip_to_norm(update, clip_norm)
    length = float(np.linalg.norm(update.astype(np.float64)))
    assert np.linalg.norm(clipped) <= clip_norm * (1 + 1e-9)
    if length <= clip_norm:
        assert np.array_equal(clipped, update.astype(np.float64))
    else:  # scaled, not cut: the direction is kept
        assert np.allclose(clipped * length / clip_norm, update, rtol=1e-6, atol=1e-6)


def test_noise_that_quantisation_would_round_away_or_the_codec_would_cut_off_is_refused():
    tiny = PrivacySettings(clip_norm=1.0, noise_multiplier=1e-4, delta=1e-5)
    with pytest.raises(PrivacyError, match="privacy.noise_multiplier.*quantisation steps"):
        tiny.check(min_devices=4, quant_bits=8, clip=1.0)
    loud = PrivacySettings(clip_norm=1.0, noise_multiplier=2.0, delta=1e-5)
    with pytest.raises(PrivacyError, match="crypto.clip"):
        loud.check(min_devices=4, quant_bits=16, clip=1.0)
    needed = loud.required_clip(4)
    assert needed == 1.0 + CLIP_MARGIN * 2.0 * 1.0 / 2
    loud.check(min_devices=4, quant_bits=16, clip=needed)
    std, step = loud.device_std(4), 2 * needed / (2 ** 16 - 1)
    assert std >= MIN_STEPS * step


def test_without_privacy_an_update_is_unchanged_and_weighted_by_its_samples():
    params = CryptoParams(max_weight=500)
    update = np.arange(5, dtype=np.float32)
    same, weight = prepare_update({"privacy": None, "min_devices": 3}, update, params, 120)
    assert same is update and weight == 120


def test_a_decrypted_round_carries_noise_of_the_configured_std_and_the_overview_its_epsilon(cloud, bundle_dir):
    clip_norm, z, delta, devices = 0.5, 1.5, 1e-5, 4
    privacy = {"clip_norm": clip_norm, "noise_multiplier": z, "delta": delta}
    needed = PrivacySettings(**privacy).required_clip(devices)
    job = cloud.create_job(bundle_dir, min_devices=devices, max_devices=devices, privacy=privacy,
                           crypto={"max_contributors": 50, "max_weight": 500, "clip": needed,
                                   "randomiser": "short-exponent"})
    assert job["privacy_budget"]["epsilon"] == 0 and job["privacy_budget"]["released_rounds"] == 0
    token = cloud.token(job["id"], max_uses=devices)
    headers = [cloud.enrol(token) for _ in range(devices)]
    plan = cloud.plan(headers[0])
    assert plan["privacy"] == privacy and plan["min_devices"] == devices
    base = cloud.weights(headers[0], 1)
    rng = np.random.default_rng(7)
    updates = [rng.normal(0, 0.02, plan["shared_values"]) for _ in range(devices)]  # norms about 2.5: clipped
    assert min(np.linalg.norm(u) for u in updates) > clip_norm
    for i, device in enumerate(headers):
        plan = cloud.plan(device)
        encoder = encoder_for(plan, seed=i)
        update, weight = prepare_update(plan, updates[i], encoder.params, samples=37)
        assert weight == encoder.params.max_weight  # under privacy every device weighs the same
        response = cloud.upload(device, plan["round"]["id"], encoder.encode(update, weight,
                                                                            round_id=plan["round"]["id"]).payload)
        assert response.status_code == 200, response.text
    cloud.wait_for_version(headers[0], 2)
    mean_clipped = np.mean([clip_to_norm(u, clip_norm) for u in updates], axis=0)
    noise = (cloud.weights(headers[0], 2).astype(np.float64) - base) - mean_clipped
    expected = z * clip_norm / devices  # the sum's noise has std z*C with min_devices devices; the mean's / k
    values = noise.size
    assert abs(noise.std() - expected) < 5 * expected / math.sqrt(2 * values)
    assert abs(noise.mean()) < 5 * expected / math.sqrt(values)
    budget = cloud.job(job["id"])["privacy_budget"]
    assert budget["released_rounds"] == 1
    assert budget["epsilon"] == pytest.approx(epsilon(z, 1, delta), abs=1e-4) and budget["epsilon"] > 0
    assert budget["epsilon_planned"] == pytest.approx(epsilon(z, 3, delta), abs=1e-4)
    page = requests.get(f"{cloud.url}/dashboard?job={job['id']}", auth=("admin", cloud.admin_token)).text
    assert f"epsilon <b>{budget['epsilon']:.2f}</b> spent over 1 released rounds" in page
    text = job_text(cloud.job(job["id"]))
    assert f"differential privacy: epsilon {budget['epsilon']:.2f} spent over 1 released rounds" in text[3]


def test_a_job_without_privacy_reports_none(cloud, bundle_dir):
    job = cloud.create_job(bundle_dir)
    assert job["privacy_budget"] is None and job["config"]["privacy"] is None
    assert cloud.plan(cloud.enrol(cloud.token(job["id"])))["privacy"] is None
    page = requests.get(f"{cloud.url}/dashboard?job={job['id']}", auth=("admin", cloud.admin_token)).text
    assert "No differential privacy" in page


@pytest.mark.parametrize("privacy, crypto, field", [
    ({"clip_norm": 1.0, "noise_multiplier": -1, "delta": 1e-5}, {}, "privacy.noise_multiplier"),
    ({"clip_norm": 0, "noise_multiplier": 1, "delta": 1e-5}, {}, "privacy.clip_norm"),
    ({"clip_norm": 1.0, "noise_multiplier": 1, "delta": 1.5}, {}, "privacy.delta"),
    ({"clip_norm": 1.0, "noise_multiplier": 1}, {}, "privacy.delta"),
    ({"clip_norm": 1.0, "noise_multiplier": 1, "delta": 1e-5, "epsilon": 3}, {}, "privacy.epsilon"),
    ({"clip_norm": 1.0, "noise_multiplier": "lots", "delta": 1e-5}, {}, "privacy.noise_multiplier"),
    ({"clip_norm": 1.0, "noise_multiplier": 2, "delta": 1e-5}, {"clip": 1.0}, "crypto.clip"),
    ({"clip_norm": 1.0, "noise_multiplier": 1e-3, "delta": 1e-5}, {"clip": 1.1, "quant_bits": 4},
     "privacy.noise_multiplier"),
])
def test_invalid_privacy_settings_are_refused_with_the_field_named(cloud, bundle_dir, privacy, crypto, field):
    config = {"name": "dp", "rounds": 3, "min_devices": 2, "max_devices": 5, "privacy": privacy, "crypto": crypto}
    response = requests.post(f"{cloud.url}/admin/jobs", headers=cloud.admin, files=job_form_files(bundle_dir),
                             data={"config": json.dumps(config)})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request" and field in response.json()["message"]
    assert requests.get(f"{cloud.url}/admin/jobs", headers=cloud.admin).json()["jobs"] == []


def exact_gaussian_epsilon(mu: float, delta: float) -> float:
    """Epsilon of the Gaussian mechanism with sensitivity / std = mu at delta (Balle and Wang 2018, Thm. 8)."""
    def delta_of(eps):
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2)
    low, high = 0.0, 100.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if delta_of(mid) > delta else (low, mid)
    return high


def test_epsilon_grows_with_rounds_and_matches_dp_accounting_and_the_gaussian_bounds():
    z, delta = 2.0, 1e-5
    spent = [epsilon(z, rounds, delta) for rounds in (0, 1, 2, 5, 10, 30, 100)]
    assert spent[0] == 0 and all(a < b for a, b in zip(spent, spent[1:]))
    reference = RdpAccountant()
    reference.compose(dp_accounting.GaussianDpEvent(z), 30)
    assert epsilon(z, 30, delta) == pytest.approx(reference.get_epsilon(delta), rel=1e-9)
    # 30 Gaussian releases of multiplier z are one of multiplier z / sqrt(30): the exact epsilon is a floor,
    # the classic RDP conversion min over orders of 30 * a / (2 z^2) + log(1 / delta) / (a - 1) a ceiling
    exact = exact_gaussian_epsilon(math.sqrt(30) / z, delta)
    classic = min(30 * a / (2 * z * z) + math.log(1 / delta) / (a - 1) for a in np.linspace(1.01, 200, 20000))
    assert exact <= epsilon(z, 30, delta) <= classic
    assert epsilon(z, 30, delta) < exact * 1.15  # and close to exact


@pytest.mark.parametrize("target", [1.0, 4.0, 8.0])
def test_calibrated_noise_spends_the_target_epsilon_and_no_more(target):
    z = calibrate(target, 30, 1e-5)
    assert epsilon(z, 30, 1e-5) <= target
    assert epsilon(z * 0.99, 30, 1e-5) > target


def test_fleet_run_with_dp_epsilon_spends_it_and_reports_it(tmp_path):
    from click.testing import CliRunner

    from device_sim.cli import main as sim

    result = CliRunner().invoke(sim, ["run", "--dataset", "synthetic", "--subjects", "5", "--new-users", "1",
                                      "--rounds", "2", "--local-epochs", "1", "--baseline-epochs", "2",
                                      "--personal-epochs", "2", "--dp-epsilon", "4", "--dp-clip", "0.5",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    dp = report["privacy"]
    assert dp["released_rounds"] == 2 and dp["min_devices"] == 4 and dp["clip_norm"] == 0.5
    assert 3.99 < dp["epsilon"] <= 4.0 and dp["noise_multiplier"] == pytest.approx(calibrate(4, 2, 1e-5))
    assert f"Differential privacy: epsilon {dp['epsilon']:.2f} at delta 1e-05" in (tmp_path / "report.md").read_text()
    assert "privacy: epsilon 4.00" in result.output


def test_a_diverged_update_still_sends_its_share_of_the_noise():
    settings_ = PrivacySettings(clip_norm=1.0, noise_multiplier=2.0, delta=1e-5)
    params = CryptoParams(clip=settings_.required_clip(4))
    diverged = np.full(20_000, np.nan)
    diverged[0] = np.inf
    noisy = privatise(diverged, settings_, 4, params)
    assert np.all(np.isfinite(noisy)) and abs(noisy.std() - settings_.device_std(4)) < 0.05 * settings_.device_std(4)


def test_the_tff_engine_refuses_dp_rather_than_report_an_epsilon_it_did_not_spend(tmp_path):
    from click.testing import CliRunner

    from device_sim.cli import main as sim

    result = CliRunner().invoke(sim, ["run", "--dataset", "synthetic", "--subjects", "4", "--new-users", "0",
                                      "--rounds", "1", "--engine", "tff", "--dp-epsilon", "4", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "the tff engine adds no differential-privacy noise" in result.output
    assert not (tmp_path / "report.json").exists()
