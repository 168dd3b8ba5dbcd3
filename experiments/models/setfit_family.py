"""SetFit: contrastive fine-tuning of a sentence encoder, then a logistic-regression head."""

from __future__ import annotations

import tempfile
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions

from experiments.models import register
from experiments.models.encoders import (
    DEFAULT_MODEL, inference, resolve_device, resolve_model_dir, resolve_precision, setup_torch,
)
from experiments.models.multilabel import constant_columns
from experiments.models.sentence import ENCODER_CONSTRAINTS


@register("setfit")
class SetFitClassifier(ClassifierMixin, BaseEstimator):
    """SetFit: contrastive fine-tuning of the sentence encoder plus a logistic-regression head.

    The ``setfit`` package behind the scikit-learn contract.

    For frames the head is one-vs-rest and ``predict_proba`` has one column
    per frame. ``num_iterations`` sets how many contrastive pairs are drawn
    per training paragraph; it dominates training time on a CPU.
    """

    _parameter_constraints = {
        **ENCODER_CONSTRAINTS,
        "num_iterations": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "body_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "head_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "head_C": [Interval(Real, 0, None, closed="neither")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "seed": [Integral],
    }

    def __init__(self, model: str = DEFAULT_MODEL, multilabel: bool = False, num_iterations: int = 3,
                 epochs: int = 1, batch_size: int = 16, body_learning_rate: float = 2e-5,
                 head_learning_rate: float = 1e-2, head_C: float = 10.0, class_weight: str | None = "balanced",
                 max_length: int = 256, device: str = "auto", precision: str = "auto", seed: int = 0):
        self.model = model
        self.multilabel = multilabel
        self.num_iterations = num_iterations
        self.epochs = epochs
        self.batch_size = batch_size
        self.body_learning_rate = body_learning_rate
        self.head_learning_rate = head_learning_rate
        self.head_C = head_C
        self.class_weight = class_weight
        self.max_length = max_length
        self.device = device
        self.precision = precision
        self.seed = seed

    def fit(self, X, y):
        import datasets
        from setfit import SetFitModel, Trainer, TrainingArguments
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        from setfit import logging as setfit_logging

        setup_torch(self.seed)
        setfit_logging.set_verbosity_error()  # the run reports progress; SetFit's own notices are noise here
        y = np.asarray(y)
        model = SetFitModel.from_pretrained(
            str(resolve_model_dir(self.model)), local_files_only=True, device=resolve_device(self.device),
            multi_target_strategy="one-vs-rest" if self.multilabel else None,
            head_params={"C": self.head_C, "class_weight": self.class_weight, "max_iter": 2000, "random_state": self.seed},
        )
        labels = y.tolist()
        with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:
            args = TrainingArguments(
                output_dir=scratch, batch_size=self.batch_size, num_epochs=self.epochs,
                num_iterations=self.num_iterations, body_learning_rate=self.body_learning_rate,
                head_learning_rate=self.head_learning_rate, max_length=self.max_length, seed=self.seed,
                report_to="none", show_progress_bar=False, save_strategy="no", logging_strategy="no",
            )
            trainer = Trainer(model=model, args=args,
                              train_dataset=datasets.Dataset.from_dict({"text": list(X), "label": labels}))
            # The run shows its own progress bar; the trainer's loss printouts would only interleave with it.
            trainer.remove_callback(PrinterCallback)
            trainer.remove_callback(ProgressCallback)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*pin_memory.*")
                # A frame constant in training gets a constant head; degenerate_ reports it instead.
                warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
                trainer.train()
        self.model_ = model
        self.classes_ = np.arange(y.shape[1]) if self.multilabel else np.unique(y)
        self.degenerate_ = constant_columns(y) if self.multilabel else []
        return self

    def predict_proba(self, X) -> np.ndarray:
        device = resolve_device(self.device)
        with inference(device, resolve_precision(self.precision, device)):
            proba = np.asarray(self.model_.predict_proba(list(X), batch_size=16, as_numpy=True, show_progress_bar=False),
                               dtype=np.float32)
        if self.multilabel and proba.ndim == 3:  # some heads return one (n, 2) block per frame
            proba = proba[:, :, 1].T
        return proba

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.multilabel:
            return (proba >= 0.5).astype(int)
        return self.classes_[proba.argmax(axis=1)]

    def save(self, directory) -> None:
        self.model_.save_pretrained(str(directory))

    def load_weights(self, directory) -> "SetFitClassifier":
        from setfit import SetFitModel

        self.model_ = SetFitModel.from_pretrained(str(directory), local_files_only=True, device=resolve_device(self.device))
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("model_", None)  # saved by save(); the pickle holds only parameters and classes
        return state
