"""Malformed pipeline specs: (case id, file text, fragments the error must contain).

Each case breaks one thing on top of a valid spec (``BASE``), so the error must be about that thing.
Shared by the validator test and the DAG-folder test in ``test_bad_specs.py``.
"""

from __future__ import annotations

BASE = """pipeline: {name}
schedule: "@daily"
source:
  kafka:
    topics: [events]
    schema: {{customer_id: string, churned: int, amount: float}}
preprocess:
  transform: mlops_ops.examples.churn:churn_features
  key_column: customer_id
train:
  trainer: sklearn
  task: binary
  target: churned
evaluate:
  metrics: [roc_auc]
  thresholds: {{roc_auc: {{min: 0.6}}}}
promote:
  model_name: {name}
"""


def spec(name: str, **replace: str) -> str:
    """BASE for pipeline ``name`` with text replacements applied (old=new pairs given as kwargs a=(old, new))."""
    text = BASE.format(name=name)
    for old, new in replace.values():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _r(old: str, new: str) -> tuple[str, str]:
    return old, new


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

# (case id, text or bytes, fragments that must all appear in the error)
CASES: list[tuple[str, str | bytes, list[str]]] = [
    (
        "wrong_type_retries",
        spec("p", a=_r('schedule: "@daily"', 'schedule: "@daily"\nretries: three')),
        ["retries", "integer", "three"],
    ),
    (
        "negative_retries",
        spec("p", a=_r('schedule: "@daily"', 'schedule: "@daily"\nretries: -1')),
        ["retries", "greater than or equal to 0"],
    ),
    ("unknown_top_level_key", spec("p", a=_r("source:", "sourse: {}\nsource:")), ["sourse", "not a known key"]),
    (
        "unknown_nested_key",
        spec("p", a=_r("  trainer: sklearn", "  trainr: sklearn\n  trainer: sklearn")),
        ["train.trainr", "not a known key"],
    ),
    ("missing_required_field", spec("p", a=_r("  target: churned\n", "")), ["train.target", "Field required"]),
    (
        "pipeline_name_not_identifier",
        spec("p", a=_r("pipeline: p", "pipeline: 'churn model!'")),
        ["pipeline", "churn model!"],
    ),
    ("pipeline_name_not_file_stem", spec("other"), ["pipeline", "file name stem"]),
    ("bad_cron_words", spec("p", a=_r('"@daily"', '"every day"')), ["schedule", "every day"]),
    ("bad_cron_minute", spec("p", a=_r('"@daily"', '"61 * * * *"')), ["schedule", "61 * * * *"]),
    ("bad_cron_field_count", spec("p", a=_r('"@daily"', '"* * *"')), ["schedule", "* * *"]),
    ("threshold_not_number", spec("p", a=_r("min: 0.6", "min: high")), ["thresholds", "roc_auc", "min", "high"]),
    ("threshold_min_above_max", spec("p", a=_r("min: 0.6", "min: 0.9, max: 0.5")), ["thresholds", "min", "max"]),
    ("threshold_unknown_metric", spec("p", a=_r("{roc_auc: {min: 0.6}}", "{roc_auk: {min: 0.6}}")), ["roc_auk"]),
    (
        "unknown_metric",
        spec("p", a=_r("metrics: [roc_auc]", "metrics: [roc_auc, happiness]")),
        ["evaluate.metrics", "happiness"],
    ),
    ("no_metrics", spec("p", a=_r("metrics: [roc_auc]", "metrics: []")), ["evaluate.metrics"]),
    (
        "negative_max_regression",
        spec("p", a=_r("  thresholds:", "  max_regression: {roc_auc: -0.1}\n  thresholds:")),
        ["max_regression", "-0.1"],
    ),
    (
        "splits_do_not_sum_to_one",
        spec(
            "p",
            a=_r(
                "  key_column: customer_id",
                "  key_column: customer_id\n  splits: {train: 0.9, validation: 0.2, test: 0.1}",
            ),
        ),
        ["splits"],
    ),
    (
        "split_out_of_range",
        spec("p", a=_r("  key_column: customer_id", "  key_column: customer_id\n  splits: {train: 1.5}")),
        ["splits.train"],
    ),
    (
        "drift_share_zero",
        spec("p", a=_r("promote:", "drift: {drift_share: 0}\npromote:")),
        ["drift.drift_share", "greater than 0"],
    ),
    (
        "drift_bad_cooldown",
        spec("p", a=_r("promote:", "drift: {cooldown: soon}\npromote:")),
        ["drift.cooldown", "soon"],
    ),
    (
        "drift_bad_window",
        spec("p", a=_r("promote:", "drift: {window: last week}\npromote:")),
        ["drift.window", "last week"],
    ),
    (
        "drift_without_promote",
        spec("p", a=_r("promote:\n  model_name: p\n", "drift: {schedule: '@daily'}\n")),
        ["drift", "promote"],
    ),
    (
        "evaluate_without_train",
        spec("p", a=_r("train:\n  trainer: sklearn\n  task: binary\n  target: churned\n", "")),
        ["evaluate", "train"],
    ),
    (
        "promote_without_evaluate",
        spec("p", a=_r("evaluate:\n  metrics: [roc_auc]\n  thresholds: {roc_auc: {min: 0.6}}\n", "")),
        ["promote", "evaluate"],
    ),
    (
        "source_with_no_kind",
        spec(
            "p",
            a=_r(
                "  kafka:\n    topics: [events]\n    schema: {customer_id: string, churned: int, amount: float}\n",
                "  {}\n",
            ),
        ),
        ["source"],
    ),
    ("empty_topic_list", spec("p", a=_r("topics: [events]", "topics: []")), ["source.kafka.topics"]),
    (
        "topic_bad_characters",
        spec("p", a=_r("topics: [events]", "topics: ['events; rm -rf /']")),
        ["source.kafka.topics", "rm -rf"],
    ),
    ("schema_unknown_type", spec("p", a=_r("amount: float", "amount: money")), ["schema", "money"]),
    (
        "s3_bad_bucket",
        spec(
            "p",
            a=_r(
                "  kafka:\n    topics: [events]\n    schema: {customer_id: string, churned: int, amount: float}\n",
                "  s3: {bucket: My_Bucket, format: csv}\n",
            ),
        ),
        ["source.s3.bucket", "My_Bucket"],
    ),
    (
        "s3_unknown_format",
        spec(
            "p",
            a=_r(
                "  kafka:\n    topics: [events]\n    schema: {customer_id: string, churned: int, amount: float}\n",
                "  s3: {bucket: landing, format: xlsx}\n",
            ),
        ),
        ["source.s3.format", "xlsx"],
    ),
    (
        "unknown_executor",
        spec("p", a=_r("  trainer: sklearn", "  trainer: sklearn\n  executor: gpu-cluster")),
        ["train.executor", "gpu-cluster"],
    ),
    (
        "bad_memory",
        spec("p", a=_r("  trainer: sklearn", "  trainer: sklearn\n  resources: {memory: lots}")),
        ["train.resources.memory", "lots"],
    ),
    (
        "too_many_gpus",
        spec("p", a=_r("  trainer: sklearn", "  trainer: sklearn\n  resources: {gpus: 99}")),
        ["train.resources.gpus", "99"],
    ),
    (
        "docker_settings_on_local_executor",
        spec("p", a=_r("  trainer: sklearn", "  trainer: sklearn\n  docker: {network_mode: host}")),
        ["train.docker", "applies to executor 'docker' only, not 'local'"],
    ),
    (
        "tolerations_on_docker_executor",
        spec("p", a=_r("  trainer: sklearn", "  trainer: sklearn\n  executor: docker\n  tolerations: [{key: gpu}]")),
        ["train.tolerations", "applies to executor 'kubernetes' only"],
    ),
    (
        "bad_namespace",
        spec(
            "p",
            a=_r(
                "  trainer: sklearn", "  trainer: sklearn\n  executor: kubernetes\n  kubernetes: {namespace: ML_Team}"
            ),
        ),
        ["train.kubernetes.namespace", "ML_Team"],
    ),
    (
        "gpu_type_without_gpus",
        spec(
            "p", a=_r("  trainer: sklearn", "  trainer: sklearn\n  executor: kubernetes\n  resources: {gpu_type: L4}")
        ),
        ["train.resources.gpu_type", "set resources.gpus too"],
    ),
    (
        "bad_lake_uri",
        spec("p", a=_r('schedule: "@daily"', 'schedule: "@daily"\nlake: ftp://host/lake')),
        ["lake", "ftp://host/lake"],
    ),
    (
        "transform_not_dotted_path",
        spec("p", a=_r("mlops_ops.examples.churn:churn_features", "'churn features'")),
        ["preprocess.transform", "churn features"],
    ),
    (
        "bad_start_date",
        spec("p", a=_r('schedule: "@daily"', 'schedule: "@daily"\nstart_date: yesterday-ish')),
        ["start_date", "yesterday-ish"],
    ),
    (
        "continuous_with_triggers",
        spec("p", a=_r('"@daily"', '"@continuous"'), b=_r("promote:", "retrain: {control_topic: ctl}\npromote:")),
        ["@continuous"],
    ),
    ("yaml_syntax_error", spec("p", a=_r("topics: [events]", "topics: [events")), ["not valid YAML"]),
    ("yaml_tab_indentation", spec("p", a=_r("  target: churned", "\ttarget: churned")), ["not valid YAML"]),
    (
        "yaml_python_tag",
        "pipeline: p\nsource: !!python/object/apply:os.system ['echo pwned']\n",
        ["not valid YAML", "python/object/apply"],
    ),
    ("yaml_billion_laughs", BILLION_LAUGHS, ["expands to more than"]),
    (
        "duplicate_key",
        spec("p", a=_r("  target: churned", "  target: churned\n  target: label")),
        ["target", "given twice"],
    ),
    ("top_level_list", "- pipeline: p\n- source: {}\n", ["must be a mapping", "list"]),
    ("empty_file", "", ["must be a mapping", "empty"]),
    ("only_a_comment", "# nothing here yet\n", ["must be a mapping", "empty"]),
    ("not_utf8", b"pipeline: p\ndescription: caf\xe9\n", ["not UTF-8"]),
    ("huge_file", "pipeline: p\n" + "# padding\n" * 120_000, ["at most 1000000"]),
]
