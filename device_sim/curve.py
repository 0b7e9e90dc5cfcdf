"""The label-efficiency curve: what federation and personal layers are worth to a new wearer after k labels.

Leave-``held_out``-out rotation: per seed the subjects are shuffled and dealt
into groups; each group in turn is the new wearers while the other subjects
train the federation (within-subject: their earlier executions train, their
later ones test). A new wearer's later executions are its fixed test; it has
labelled its first k of the earlier ones (k = 1, 2, 3, all). Scored per run:
global (k = 0), local-only (k) trained from the initial model on those
executions alone, personalised (k): the personal layers fine-tuned on them and
used as far as the wearer's own held-out executions say
(sdk.personalisation.choose_head), and the personal head alone. Every model is
scored with and without activity-sequence decoding (sdk.decoding), whose
transition counts the federation's devices sum. Every model trains on the
executions cut into denser windows (``train_overlap``); every test keeps the
dataset's windows. Each fold's results are kept on disk as soon as the fold
ends (folds run side by side, a process each): a rerun skips the folds
already done.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from device_sim.dataset import Dataset, DeviceData, pooled
from device_sim.fleet import Fleet, FleetConfig, federation_transitions
from device_sim.partitions import same_executions, within_subject
from device_sim.progress import Progress
from sdk.decoding import TransitionModel, decode
from sdk.personalisation import BLEND_WEIGHTS, best_blend, blend, held_out_heads, held_out_scores, personalise
from sdk.storage import write_atomically
from sdk.trainer import TFLiteTrainer

LABELLED = ("1", "2", "3", "all")  # labelled executions of a new wearer
VARIANTS = ("decoded", "raw")  # with and without activity-sequence decoding
MODELS = ("local_only", "personalised", "personal_head", "global")
REFERENCES = ("chosen_by_accuracy", "even_blend")  # other head choices, scored beside (even_blend: fixed 0.5)
WORSE = {"worse_than_global_2pts": 0.02, "worse_than_global_5pts": 0.05}


@dataclass(frozen=True)
class CurveConfig:
    """The rotation and the training of every fold."""

    seeds: int = 3
    held_out: int = 3
    rounds: int = 30
    local_epochs: int = 5
    personal_epochs: int = 30
    baseline_epochs: int = 40
    batch_size: int = 32
    lr: float = 0.02
    momentum: float = 0.9
    engine: str = "plaintext"
    server_optimiser: str = "fedavg"
    server_settings: dict = field(default_factory=dict)
    train_overlap: float | None = 0.8  # training windows overlap this much (None: the dataset's); tests keep its
    bootstrap: int = 2000

    def fold_settings(self) -> dict:
        """What a fold's results depend on (a fold on disk with other settings is not reused)."""
        settings = asdict(self)
        for name in ("seeds", "bootstrap"):
            settings.pop(name)
        return settings


def rotation(subjects: list[str], held_out: int, seed: int) -> list[list[str]]:
    """Subjects shuffled by ``seed`` and dealt into consecutive groups of about ``held_out``."""
    if not 1 <= held_out < len(subjects):
        raise ValueError(f"held_out must be between 1 and {len(subjects) - 1}, got {held_out}")
    order = [subjects[i] for i in np.random.default_rng(seed).permutation(len(subjects))]
    return [sorted(group) for group in np.array_split(order, max(2, round(len(subjects) / held_out)))]


def _accuracy(probs: np.ndarray, test: DeviceData, transitions: TransitionModel) -> dict:
    decoded = decode(probs, test.execution, transitions)
    return {"raw": float(np.mean(np.argmax(probs, 1) == test.labels)),
            "decoded": float(np.mean(np.argmax(decoded, 1) == test.labels))}


class FoldRun:
    """One fold: the federation without the new wearers, then every model scored."""

    def __init__(self, dataset: Dataset, config: CurveConfig, seed: int, new_wearers: list[str], work: Path,
                 training: Dataset | None = None):
        """``training``: the same recordings cut into the windows every model trains on (default ``dataset``'s)."""
        self.dataset, self.config, self.seed, self.new_wearers, self.work = dataset, config, seed, new_wearers, work
        self.training = training or dataset

    def run(self) -> dict:
        c = self.config
        started = time.perf_counter()
        fleet = Fleet(self.dataset, FleetConfig(
            rounds=c.rounds, local_epochs=c.local_epochs, batch_size=c.batch_size, lr=c.lr, momentum=c.momentum,
            personal_epochs=c.personal_epochs, baseline_epochs=c.baseline_epochs,
            new_user_subjects=tuple(self.new_wearers), engine=c.engine, server_optimiser=c.server_optimiser,
            server_settings=dict(c.server_settings), seed=self.seed), self.work, show_progress=False,
            log=lambda *_: None, training=self.training)
        self.weights = fleet.train()
        np.save(self.work / "final_shared.npy", self.weights)
        self.bundle, self.initial = fleet.bundle, fleet.initial_weights
        classes = len(self.dataset.label_names)
        predicted = {p.subject: same_executions(p.data, p.train) for p in fleet.participants}  # at the test stride
        self.transitions = federation_transitions(list(predicted.values()), classes)
        central = self._trainer(self.initial)
        x, y = pooled([p.train for p in fleet.participants])
        self._fit(central, x, y)
        federated = self._trainer(self.weights)
        within = {p.subject: self._within(p.train, predicted[p.subject], p.test, federated, central)
                  for p in fleet.participants}
        dense = {device_id: i for i, (device_id, _) in enumerate(self.training.catalogue)}
        newcomers = {p.subject: self._new_wearer(p.data, self.training.devices[dense[p.device_id]], federated)
                     for p in fleet.newcomers}
        return {"seed": self.seed, "new_wearers": self.new_wearers, "settings": c.fold_settings(),
                "final_round_global": fleet.rounds[-1]["global_accuracy"] if fleet.rounds else None,
                "transitions": self.transitions.transitions.round(4).tolist(),
                "within": within, "new_wearer": newcomers, "seconds": round(time.perf_counter() - started, 1)}

    def _trainer(self, weights: np.ndarray) -> TFLiteTrainer:
        trainer = TFLiteTrainer(self.bundle)
        trainer.set_weights(weights, "shared")
        return trainer

    def _fit(self, trainer: TFLiteTrainer, x, y) -> None:
        c = self.config
        trainer.fit(x, y, epochs=c.baseline_epochs, batch_size=c.batch_size, lr=c.lr, momentum=c.momentum,
                    seed=self.seed)

    def _local_and_personal(self, labelled: DeviceData, check: DeviceData, test: DeviceData,
                            federated: TFLiteTrainer) -> dict:
        """Local-only, personalised (safe), personal head alone; each with and without decoding. ``labelled``:
        the training windows; ``check``: the same executions cut as the test windows are (the head choice
        scores its held-out folds on these)."""
        c = self.config
        local = self._trainer(self.initial)
        self._fit(local, labelled.windows, labelled.labels)
        held = held_out_heads(federated, labelled.windows, labelled.labels, labelled.execution, c.personal_epochs,
                              c.batch_size, c.lr, c.momentum, seed=self.seed,
                              check=(check.windows, check.labels, check.execution))
        personalise(federated, labelled.windows, labelled.labels, c.personal_epochs, c.batch_size, c.lr, c.momentum,
                    seed=self.seed)
        heads = federated.predict_proba(test.windows, "global"), federated.predict_proba(test.windows, "personal")

        every_blend = [_accuracy(blend(*heads, w), test, self.transitions) for w in BLEND_WEIGHTS]
        held_out = {variant: None if held is None else held_out_scores(
            held, self.transitions if variant == "decoded" else None) for variant in VARIANTS}

        def chosen(by: str) -> dict[str, int]:
            """Per variant, the index of the blend the held-out scores choose (the global head without them)."""
            return {variant: 0 if scores is None else best_blend(scores, by) for variant, scores in held_out.items()}

        by_likelihood, by_accuracy = chosen("likelihood"), chosen("accuracy")
        return {"by_weight": {variant: {"test": [scores[variant] for scores in every_blend],
                                        "held_out": held_out[variant]} for variant in VARIANTS},
                "local_only": _accuracy(local.predict_proba(test.windows), test, self.transitions),
                "personalised": {v: every_blend[i][v] for v, i in by_likelihood.items()},
                "personal_weight": {v: BLEND_WEIGHTS[i] for v, i in by_likelihood.items()},
                "chosen_by_accuracy": {v: every_blend[i][v] for v, i in by_accuracy.items()},
                "chosen_by_accuracy_weight": {v: BLEND_WEIGHTS[i] for v, i in by_accuracy.items()},
                "personal_head": every_blend[-1],
                "even_blend": every_blend[BLEND_WEIGHTS.index(0.5)],
                "labelled_windows": len(labelled)}

    def _within(self, train: DeviceData, check: DeviceData, test: DeviceData, federated: TFLiteTrainer,
                central: TFLiteTrainer) -> dict:
        return {**self._local_and_personal(train, check, test, federated),
                "global": _accuracy(federated.predict_proba(test.windows), test, self.transitions),
                "centralised": _accuracy(central.predict_proba(test.windows), test, self.transitions)}

    def _new_wearer(self, device: DeviceData, dense: DeviceData, federated: TFLiteTrainer) -> dict:
        """``dense``: the same device cut into the training windows."""
        labelled_part, test = within_subject(device)
        executions = labelled_part.executions
        result = {"global": _accuracy(federated.predict_proba(test.windows), test, self.transitions),
                  "test_windows": len(test), "labelled_executions": len(executions)}
        for k in LABELLED:
            if k != "all" and int(k) > len(executions):
                continue
            chosen = executions if k == "all" else executions[: int(k)]
            check = labelled_part.select(np.isin(labelled_part.execution, chosen))
            result[f"k{k}"] = self._local_and_personal(same_executions(dense, check), check, test, federated)
        return result


def _run_fold(dataset: Dataset, training: Dataset | None, config: CurveConfig, seed: int, group: list[str],
              work: Path) -> dict:
    return FoldRun(dataset, config, seed, group, work, training).run()


def run_folds(dataset: Dataset, config: CurveConfig, out: Path, show_progress: bool = True,
              log: Callable[[str], None] = print, jobs: int = 1, training: Dataset | None = None) -> list[dict]:
    """Every fold of every seed, each kept in OUT/folds/ as soon as it is done; folds already there (same
    settings) are read back. ``jobs`` > 1 runs that many folds at once, each in a process of its own (a
    fold keeps one core busy); the results are the same as one by one."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    cut = (training or dataset).spec
    if config.train_overlap is not None and (cut is None or cut.overlap != config.train_overlap):
        raise ValueError(f"the training windows must overlap by train_overlap = {config.train_overlap}")
    folds_dir = out / "folds"
    folds_dir.mkdir(parents=True, exist_ok=True)
    plan = [(seed, i, group) for seed in range(config.seeds)
            for i, group in enumerate(rotation(dataset.subjects, config.held_out, seed))]
    results: dict[tuple[int, int], dict] = {}
    todo = []
    for seed, i, group in plan:
        path = folds_dir / f"seed{seed}-fold{i}.json"
        if not path.exists():
            todo.append((seed, i, group))
            continue
        done = json.loads(path.read_text())
        if done["settings"] != config.fold_settings() or done["new_wearers"] != group:
            raise ValueError(f"{path} was made with other settings or subjects; give another --out")
        results[seed, i] = done
    with Progress("curve folds", total=len(plan), enabled=show_progress) as progress:
        progress.advance(len(results))

        def keep(seed: int, i: int, group: list[str], result: dict) -> None:
            write_atomically(folds_dir / f"seed{seed}-fold{i}.json", json.dumps(result, indent=1).encode())
            results[seed, i] = result
            progress.advance()
            log(f"seed {seed} fold {i} (new wearers {', '.join(group)}): {result['seconds']:.0f} s")

        def work(seed: int, i: int) -> Path:
            return out / "work" / f"seed{seed}-fold{i}"

        if jobs == 1 or len(todo) < 2:
            for seed, i, group in todo:
                keep(seed, i, group, _run_fold(dataset, training, config, seed, group, work(seed, i)))
        else:
            with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
                running = {pool.submit(_run_fold, dataset, training, config, seed, group, work(seed, i)):
                           (seed, i, group) for seed, i, group in todo}
                try:
                    for future in as_completed(running):
                        keep(*running[future], future.result())
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # the folds done so far are kept
                    raise
    return [results[seed, i] for seed, i, _ in plan]


def bootstrap_interval(values: list[float], draws: int, seed: int = 0) -> list[float] | None:
    """95% percentile interval of the mean of ``values`` (one per subject), resampled ``draws`` times."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return None
    means = v[np.random.default_rng(seed).integers(v.size, size=(draws, v.size))].mean(axis=1)
    return [round(float(q), 4) for q in np.percentile(means, [2.5, 97.5])]


def _summarise(runs: list[dict], models: tuple[str, ...], draws: int) -> dict:
    """Means over runs, intervals over subjects (each subject's runs averaged first), worse-than-global shares.
    ``runs``: one dict per (seed, subject) with "subject" and a score per model."""
    subjects = sorted({r["subject"] for r in runs})

    def per_subject(score: Callable[[dict], float]) -> list[float]:
        return [float(np.mean([score(r) for r in runs if r["subject"] == s])) for s in subjects]

    summary: dict = {"runs": len(runs), "subjects": len(subjects), "ci95": {}}
    for model in models:
        summary[model] = round(float(np.mean([r[model] for r in runs])), 4)
        summary["ci95"][model] = bootstrap_interval(per_subject(lambda r, m=model: r[m]), draws)
    differences = [(a, b) for a in ("personalised", "personal_head") for b in ("local_only", "global")
                   if a in models and b in models]
    for a, b in differences:
        name = f"{a}_minus_{b}"
        summary[name] = round(float(np.mean([r[a] - r[b] for r in runs])), 4)
        summary["ci95"][name] = bootstrap_interval(per_subject(lambda r, a=a, b=b: r[a] - r[b]), draws)
    if "personalised" in models:
        for name, points in WORSE.items():
            summary[name] = round(float(np.mean([r["personalised"] - r["global"] < -points for r in runs])), 4)
        summary["worst_vs_global"] = round(float(min(r["personalised"] - r["global"] for r in runs)), 4)
        summary["others_worse_than_global"] = {
            model: {name: round(float(np.mean([r[model] - r["global"] < -points for r in runs])), 4)
                    for name, points in WORSE.items()}
            for model in ("personal_head", *REFERENCES) if model in models}
    return summary


def summarise(folds: list[dict], config: CurveConfig) -> dict:
    """curve.json: new_wearer.k0..kall and within.all, decoded (the default) and ``without_decoding``."""
    def variant(name: str) -> dict:
        new_wearer: dict = {"k0": _summarise(
            [{"subject": s, "global": r["global"][name]} for f in folds for s, r in f["new_wearer"].items()],
            ("global",), config.bootstrap)}
        for k in LABELLED:
            runs = [{"subject": s, "seed": f["seed"], "global": r["global"][name],
                     **{m: r[f"k{k}"][m][name] for m in (*MODELS, *REFERENCES) if m != "global"}}
                    for f in folds for s, r in f["new_wearer"].items() if f"k{k}" in r]
            if runs:
                new_wearer[f"k{k}"] = _summarise(runs, (*MODELS, *REFERENCES), config.bootstrap)
                new_wearer[f"k{k}"]["by_seed"] = {
                    str(seed): {m: round(float(np.mean([r[m] for r in runs if r["seed"] == seed])), 4) for m in MODELS}
                    for seed in sorted({r["seed"] for r in runs})}
                new_wearer[f"k{k}"]["personal_weight"] = _weights(
                    [r[f"k{k}"]["personal_weight"][name] for f in folds for r in f["new_wearer"].values()
                     if f"k{k}" in r])
        within_runs = [{"subject": s, **{m: r[m][name] for m in (*MODELS, *REFERENCES, "centralised")}}
                       for f in folds for s, r in f["within"].items()]
        within = _summarise(within_runs, (*MODELS, *REFERENCES, "centralised"), config.bootstrap)
        within["global_minus_centralised"] = round(within["global"] - within["centralised"], 4)
        within["ci95"]["global_minus_centralised"] = bootstrap_interval(
            [float(np.mean([r["global"] - r["centralised"] for r in within_runs if r["subject"] == s]))
             for s in sorted({r["subject"] for r in within_runs})], config.bootstrap)
        return {"new_wearer": new_wearer, "within": {"all": within}}

    decoded = variant("decoded")
    return {**decoded, "decoding": True, "without_decoding": variant("raw"),
            "seeds": sorted({f["seed"] for f in folds}), "folds": len(folds), "config": asdict(config),
            "fold_seconds": round(float(np.mean([f["seconds"] for f in folds])), 1)}


def _weights(values: list[float]) -> dict:
    """How often each personal weight was chosen."""
    return {str(w): round(values.count(w) / len(values), 3) for w in sorted(set(values))}
