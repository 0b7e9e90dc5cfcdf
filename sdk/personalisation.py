"""Local transfer learning: personal layers on the frozen global feature extractor."""

from __future__ import annotations

from sdk.trainer import TFLiteTrainer


def reset_personal(trainer: TFLiteTrainer) -> None:
    """Personal layers start as copies of the shared layers they mirror (the manifest's layer spec says
    which): the global model's function."""
    manifest = trainer.manifest
    shared = manifest.shared.split(trainer.get_weights("shared"))
    personal = {mine: shared[theirs] for mine, theirs in manifest.spec.personal_copies}
    trainer.set_weights(manifest.personal.join(personal), "personal")


def personalise(trainer: TFLiteTrainer, windows, labels, epochs: int, batch_size: int = 32, lr: float = 0.02,
                momentum: float = 0.9, fresh: bool = True, seed: int = 0, coral: float = 0.0) -> list[float]:
    """Fine-tunes the personal layers only; returns the loss per epoch.

    ``coral`` > 0 adds FedHealth's CORAL term, here aligning the covariance of
    the adapted features with that of the frozen global features on the same
    windows (the device has no source-domain data of its own).
    """
    if fresh:
        reset_personal(trainer)
    history = trainer.fit(windows, labels, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                          part="personal", seed=seed, coral=coral)
    return history.loss
