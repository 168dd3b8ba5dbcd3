"""Experiment configs: strict schema, ``extends``, ``--set`` overrides and model checks."""

from __future__ import annotations

import pytest

from experiments import paths
from experiments.config import apply_override, load_config, resolve_raw
from experiments.errors import UserError
from experiments.models import settable_params

SMOKE = paths.CONFIGS / "smoke.yaml"
SHIPPED_CONFIGS = sorted(p.name for p in paths.CONFIGS.glob("*.yaml") if p.name != "codebook.yaml")


def _error(path, overrides=()) -> str:
    with pytest.raises(UserError) as excinfo:
        load_config(path, overrides)
    return str(excinfo.value)


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_every_shipped_config_validates(name):
    config = load_config(paths.CONFIGS / name)
    assert config.name == name.removesuffix(".yaml")
    assert config.models


def test_an_unknown_top_level_key_names_file_key_and_valid_keys(write_config):
    path = write_config("typo", "modles:\n  - name: majority\n")
    assert _error(path) == (
        f"{path}: modles: unknown key; valid keys here: name, description, tasks, frame_level, "
        "min_train_positives, data, protocol, metrics, models, seed, device, precision, final_fit"
    )


def test_an_unknown_nested_key_names_its_key_path(write_config):
    path = write_config("typo", "protocol: {fold: 3}\n")
    assert _error(path) == f"{path}: protocol.fold: unknown key; valid keys here: name, folds, repeats, group_column, split_column, learning_curve"


def test_an_unknown_key_inside_a_model_entry_names_its_index(write_config):
    path = write_config("typo", "models:\n  - name: majority\n    parms: {}\n")
    assert _error(path) == f"{path}: models.0.parms: unknown key; valid keys here: name, label, params, auxiliary"


def test_a_wrong_literal_value_names_the_key_path_and_the_choices(write_config):
    path = write_config("typo", "tasks: [stanse]\n")
    assert _error(path) == f"{path}: tasks.0: Input should be 'stance' or 'frames' (got 'stanse')"


def test_an_out_of_range_number_names_the_key_path(write_config):
    path = write_config("few", "metrics: {bootstrap: 50}\n")
    assert _error(path) == f"{path}: metrics.bootstrap: Input should be greater than or equal to 100 (got 50)"


def test_a_missing_config_file_is_an_error(tmp_path):
    assert _error(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: config not found; the shipped configs are in configs/"


def test_a_missing_parent_config_is_an_error(write_config, tmp_path):
    path = write_config("orphan", "seed: 1\n", extends="gone.yaml")
    assert _error(path) == f"{path}: extends: gone.yaml not found next to it"


def test_extends_cycles_are_an_error(write_config):
    write_config("a", "seed: 1\n", extends="b.yaml")
    b = write_config("b", "seed: 2\n", extends="a.yaml")
    assert _error(b) == f"{b}: 'extends' forms a cycle (b.yaml -> a.yaml -> b.yaml)"


def test_invalid_yaml_names_the_file_and_line(write_config):
    path = write_config("broken", "seed: 1\ntasks: [stance\n", extends=None)
    assert _error(path) == f"{path}:3: not valid YAML (expected ',' or ']', but got '<stream end>'); fix the syntax"


def test_extends_merges_nested_keys_and_replaces_lists(write_config):
    parent = write_config("parent", """\
        tasks: [stance, frames]
        protocol: {name: kfold, folds: 4, repeats: 3}
        metrics: {bootstrap: 500, min_support: 5}
        models: [{name: majority}, {name: stratified}]
        """)
    child = write_config("child", """\
        protocol: {folds: 2}
        models: [{name: tfidf_cnb, params: {clf__alpha: 0.5}}]
        """, extends=parent.name)
    config = load_config(child)
    assert config.name == "child"
    assert config.tasks == ["stance", "frames"]
    assert (config.protocol.name, config.protocol.folds, config.protocol.repeats) == ("kfold", 2, 3)
    assert (config.metrics.bootstrap, config.metrics.min_support) == (500, 5)
    assert [(m.name, m.params) for m in config.models] == [("tfidf_cnb", {"clf__alpha": 0.5})]
    assert config.seed == 13  # from base.yaml, two levels up


def test_extends_is_resolved_relative_to_the_child_file(write_config):
    parent = write_config("parent", "seed: 7\n")
    child = write_config("child", "description: child\n", extends=parent.name)
    assert resolve_raw(child)["seed"] == 7


def test_set_overrides_nested_keys_and_list_items(write_config):
    path = write_config("tiny", "models: [{name: tfidf_logreg, params: {clf__C: 10.0}}, {name: majority}]\n")
    config = load_config(path, ["models.0.params.clf__C=0.5", "protocol.folds=3", "tasks=[frames]"])
    assert config.models[0].params == {"clf__C": 0.5}
    assert config.protocol.folds == 3
    assert config.tasks == ["frames"]


def test_set_creates_a_missing_params_section():
    assert apply_override({"models": [{"name": "m"}]}, "models.0.params.C=2") == {"models": [{"name": "m", "params": {"C": 2}}]}


def test_set_does_not_modify_its_input():
    raw = {"protocol": {"folds": 5}}
    apply_override(raw, "protocol.folds=2")
    assert raw == {"protocol": {"folds": 5}}


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("seed", "--set 'seed': expected KEY=VALUE, e.g. --set seed=3"),
        ("=3", "--set '=3': expected KEY=VALUE, e.g. --set seed=3"),
        ("protocol.folds.x=3", "--set protocol.folds.x: protocol.folds is a value, not a section"),
        ("models.5.name=x", "--set models.5.name: models.5: index out of range (the list has 2 items)"),
    ],
)
def test_a_bad_set_is_an_error(assignment, message):
    assert _error(SMOKE, [assignment]) == message


def test_an_overridden_key_is_validated_like_the_file(write_config):
    path = write_config("tiny", "protocol: {folds: 2}\n")
    assert _error(path, ["protocol.folds=1"]) == f"{path}: protocol.folds: Input should be greater than or equal to 2 (got 1)"


def test_an_unregistered_model_lists_the_registered_ones():
    message = _error(SMOKE, ["models.0.name=nope"])
    assert message.startswith(f"{SMOKE}: models.0.name: unknown model 'nope'; registered models: ")
    assert "tfidf_logreg" in message.split("registered models: ")[1].split(", ")


def test_an_unknown_model_parameter_names_its_key_path_and_the_valid_ones():
    assert _error(SMOKE, ["models.1.params.Cx=1"]) == (
        f"{SMOKE}: models.1.params.Cx: not a parameter of tfidf_logreg.v1; valid: {', '.join(settable_params('tfidf_logreg'))}"
    )


def test_a_pipeline_parameter_by_its_bare_name_points_to_the_step_name():
    assert _error(SMOKE, ["models.1.params.C=1"]).startswith(
        f"{SMOKE}: models.1.params.C: not a parameter of tfidf_logreg.v1 (did you mean clf__C?); valid: ")


@pytest.mark.parametrize("value, message", [
    ("abc", "must be a float in the range (0.0, inf], got 'abc'"),
    ("-1", "must be a float in the range (0.0, inf], got -1"),
])
def test_a_wrong_model_parameter_value_is_one_line_naming_the_file_and_key_when_the_config_loads(write_config, value, message):
    path = write_config("bad", f"models: [{{name: majority}}, {{name: stratified}}, {{name: tfidf_logreg, params: {{clf__C: {value}}}}}]\n")
    assert _error(path) == f"{path}: models.2.params.clf__C: {message}"


def test_a_model_parameter_set_on_the_command_line_is_checked_the_same_way():
    assert _error(SMOKE, ["models.1.params.features__min_df=0"]) == (
        f"{SMOKE}: models.1.params.features__min_df: must be an int in the range [1, inf), got 0")


def test_the_codebook_prior_weight_must_be_a_share_or_auto(write_config):
    path = write_config("prior", "models: [{name: codebook_logreg, params: {prior_weight: 2}}]\n")
    assert _error(path) == (f"{path}: models.0.params.prior_weight: must be a float in the range [0.0, 1.0] "
                            "or a str among {'auto'}, got 2")


def test_the_frozen_encoder_inside_a_pipeline_is_checked_when_the_config_loads(write_config):
    path = write_config("encoder", "models: [{name: embed_logreg, params: {embed__max_length: 0}}]\n")
    assert _error(path) == f"{path}: models.0.params.embed__max_length: must be an int in the range [1, inf), got 0"
    path = write_config("backend", "models: [{name: embed_logreg, params: {embed__backend: tpu}}]\n")
    assert _error(path).startswith(f"{path}: models.0.params.embed__backend: must be a str among ")


def test_two_models_with_the_same_display_name_are_an_error(write_config):
    path = write_config("twice", "models: [{name: majority}, {name: majority}]\n")
    assert _error(path) == (
        f"{path}: models: model 1 ('majority') appears twice; give one a distinct 'label' "
        "(got [{'name': 'majority'}, {'name': 'majority'}])"
    )
    config = load_config(path, ["models.1.label=majority-again"])
    assert [m.display for m in config.models] == ["majority", "majority-again"]


def test_a_single_task_may_be_written_without_a_list(write_config):
    assert load_config(write_config("one", "tasks: stance\n")).tasks == ["stance"]
