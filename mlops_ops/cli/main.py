"""``mlops-ops``: manage the embedded stack and check pipeline specs."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_ops.exceptions import MlopsOpsError

if TYPE_CHECKING:
    from mlops_ops.lake.tables import PipelineTables


def _stack(args: argparse.Namespace) -> int:
    from mlops_ops.stack import EmbeddedStack
    from mlops_ops.stack.config import render_exports

    stack = EmbeddedStack(home=args.home, project=args.project)
    if args.action == "up":
        statuses = stack.up(timeout=args.timeout, spark_cluster=args.spark_cluster, postgres=args.postgres)
        _print_status(statuses)
        print(f'state: {stack.paths.home}   environment: eval "$(mlops-ops stack env)"')
        return 0
    if args.action == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.action == "status":
        statuses = stack.status()
        _print_status(statuses)
        return 0 if all(s.healthy for s in statuses) else 1
    sys.stdout.write(render_exports(stack.environment()))
    return 0


def _print_status(statuses: list) -> None:  # type: ignore[type-arg]
    for s in statuses:
        state = "healthy" if s.healthy else "DOWN"
        pid = f"pid {s.pid}" if s.pid else "-"
        print(f"{s.name:<13} {state:<8} {pid:<11} {s.url:<28} {s.what}" + ("" if s.healthy else f"  ({s.detail})"))


def _validate(args: argparse.Namespace) -> int:
    from mlops_ops.factories.loader import check_spec_files

    problems = check_spec_files([Path(p) for p in args.paths], deep=not args.shallow, connections=args.connections)
    for message in problems:
        print(message, file=sys.stderr)
    if not problems:
        print(f"ok: {len(args.paths)} path(s) checked")
    return 1 if problems else 0


def _tables(args: argparse.Namespace) -> PipelineTables:
    from mlops_ops.hooks.iceberg import IcebergCatalogHook
    from mlops_ops.lake.tables import PipelineTables

    return PipelineTables(IcebergCatalogHook(args.iceberg_conn_id).get_conn(), args.pipeline)


def _quality(args: argparse.Namespace) -> int:
    import json

    from mlops_ops.lake import batches

    tables = _tables(args)
    if args.action == "list":
        for record in batches.quarantined(tables):
            failed = ", ".join(f"{f['expectation']}({f['column']})" for f in record.get("failures", [])[:5])
            print(f"{record['batch']}\tquarantined\t{record['rows']} rows\t{record.get('suite', '')}\t{failed}")
        return 0
    if not args.batch or not args.by or not args.reason:
        print("mlops-ops quality release needs --batch, --by and --reason", file=sys.stderr)
        return 2
    try:
        snapshot = batches.release(tables, args.batch, by=args.by, reason=args.reason)
    except (LookupError, ValueError) as err:
        print(f"mlops-ops: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"batch": args.batch, "state": "released", "released_by": args.by, "raw_snapshot": snapshot}))
    return 0


def _lake(args: argparse.Namespace) -> int:
    import json

    from mlops_ops.lake import maintenance

    tables = _tables(args)
    if args.action == "maintain":
        keep = maintenance.registered_snapshots(args.mlflow_conn_id)
        report = maintenance.maintain(
            tables,
            older_than_days=args.older_than_days,
            keep=keep,
            compact=not args.no_compact,
        )
        print(json.dumps(report, indent=1))
        return 0
    print(json.dumps(maintenance.describe(tables), indent=1, default=str))
    return 0


def _model(args: argparse.Namespace) -> int:
    import json

    from mlops_ops.hooks.mlflow import MlflowHook
    from mlops_ops.training.registry import rollback

    try:
        result = rollback(MlflowHook(args.mlflow_conn_id).get_conn(), args.name, by=args.by, reason=args.reason,
                          to=args.to)  # fmt: skip
    except LookupError as err:
        print(f"mlops-ops: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


@contextlib.contextmanager
def _output_only_on_stdout() -> Iterator[None]:
    """Everything written to file descriptor 1 while the work runs (Airflow's and MLflow's logs, Spark's JVM) goes to
    stderr, so that stdout holds the command's output only (``--json | jq`` works)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _lineage(args: argparse.Namespace) -> int:
    import json

    from mlops_ops.hooks.iceberg import IcebergCatalogHook
    from mlops_ops.hooks.mlflow import MlflowHook
    from mlops_ops.lineage.chain import chain_of, parse_model_ref, render

    try:
        name, version = parse_model_ref(args.model)
    except ValueError as err:
        print(f"mlops-ops: error: {err}", file=sys.stderr)
        return 2
    with _output_only_on_stdout():
        catalog = IcebergCatalogHook(args.iceberg_conn_id).get_conn()
        chain = chain_of(MlflowHook(args.mlflow_conn_id).get_conn(), catalog, name, version, limit=args.limit)
    print(json.dumps(chain.as_dict(), indent=1, default=str) if args.json else render(chain))
    return 0


def _replay(args: argparse.Namespace) -> int:
    import json

    from mlops_ops.hooks.iceberg import IcebergCatalogHook
    from mlops_ops.hooks.mlflow import MlflowHook
    from mlops_ops.lineage.chain import parse_model_ref
    from mlops_ops.training.replay import NotReplayableError, render, replay

    try:
        name, version = parse_model_ref(args.model)
    except ValueError as err:
        print(f"mlops-ops: error: {err}", file=sys.stderr)
        return 2
    try:
        with _output_only_on_stdout():
            hook = MlflowHook(args.mlflow_conn_id)
            os.environ.update({**hook.client_env(), **IcebergCatalogHook(args.iceberg_conn_id).pyiceberg_env()})
            result = replay(hook.get_conn(), name, version)
    except NotReplayableError as err:
        print(f"mlops-ops: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict(args.tolerance), indent=1) if args.json else render(result, args.tolerance))
    return 0 if result.within(args.tolerance) else 1


def _gx(args: argparse.Namespace) -> int:
    from mlops_ops.hooks.gx import GreatExpectationsHook, scaffold

    hook = GreatExpectationsHook(args.context_root)
    if args.action == "init":
        existed = (hook.context_root / "great_expectations.yml").is_file()
        context = hook.init()
        print(f"{'existing' if existed else 'new'} Great Expectations context at {hook.context_root} "
              f"({len(context.suites.all())} suite(s)); put suites in {hook.context_root / 'expectations'}, "
              "then run `mlops-ops gx scaffold SUITE`")  # fmt: skip
        return 0
    if not args.suite:
        print("mlops-ops: error: gx scaffold needs a SUITE", file=sys.stderr)
        return 2
    for name in scaffold(hook.get_conn(), args.suite):
        print(f"checkpoint {name} ready in {hook.context_root}")
    return 0


def _check_secrets(args: argparse.Namespace) -> int:
    import os

    from mlops_ops.secrets_check import secret_problems

    problems = secret_problems(args.names, os.environ)
    for problem in problems:
        print(f"mlops-ops: refused: {problem}", file=sys.stderr)
    if not problems:
        print(f"{len(args.names)} secret(s) set and not placeholders")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops-ops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    stack = sub.add_parser("stack", help="the embedded Kafka/S3/MLflow/Airflow stack on 127.0.0.1")
    stack.add_argument("action", choices=["up", "down", "status", "env"])
    stack.add_argument("--home", type=Path, default=None, help="state folder (default: $MLOPS_OPS_HOME or ./.mlops)")
    stack.add_argument("--project", type=Path, default=None, help="repo with dags/ and plugins/ (default: cwd)")
    stack.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each service")
    stack.add_argument("--spark-cluster", action=argparse.BooleanOptionalAction, default=None,
                       help="up: also run a Spark standalone master and 2 workers on loopback (kept until "
                            "--no-spark-cluster); spark_default then points at it")  # fmt: skip
    stack.add_argument("--postgres", action=argparse.BooleanOptionalAction, default=None,
                       help="up: run PostgreSQL (Debian's server, initdb under the state folder, loopback, a "
                            "generated password) as Airflow's metadata DB (kept until --no-postgres)")  # fmt: skip
    stack.set_defaults(func=_stack)
    validate = sub.add_parser("validate", help="check pipeline spec files and the DAGs they build")
    validate.add_argument("paths", nargs="+", help="spec files or folders of them")
    validate.add_argument("--shallow", action="store_true",
                          help="parse and build the DAGs only (what the DAG processor does): import nothing, no GX "
                               "context, no Spark, no connections")  # fmt: skip
    validate.add_argument("--connections", action=argparse.BooleanOptionalAction, default=None,
                          help="check that the connections the specs name exist in Airflow (default: when "
                               "AIRFLOW_HOME is set)")  # fmt: skip
    validate.set_defaults(func=_validate)
    quality = sub.add_parser("quality", help="batches held by a quality gate: list them, or release one")
    quality.add_argument("action", choices=["list", "release"])
    quality.add_argument("--pipeline", required=True)
    quality.add_argument("--batch", help="batch id to release (see `quality list`)")
    quality.add_argument("--by", help="who releases it (recorded in the snapshot summary)")
    quality.add_argument("--reason", help="why: the fix or the override (recorded in the snapshot summary)")
    quality.add_argument("--iceberg-conn-id", default="iceberg_default")
    quality.set_defaults(func=_quality)
    lake = sub.add_parser("lake", help="the pipeline's Iceberg tables: show them, or expire and compact")
    lake.add_argument("action", choices=["show", "maintain"])
    lake.add_argument("--pipeline", required=True)
    lake.add_argument("--older-than-days", type=float, default=7.0, help="expire snapshots older than this")
    lake.add_argument("--no-compact", action="store_true", help="only expire snapshots")
    lake.add_argument("--iceberg-conn-id", default="iceberg_default")
    lake.add_argument("--mlflow-conn-id", default="mlflow_default", help="to keep snapshots model versions name")
    lake.set_defaults(func=_lake)
    model = sub.add_parser("model", help="registered models: roll the champion back to the previous version")
    model.add_argument("action", choices=["rollback"])
    model.add_argument("--name", required=True, help="registered model name")
    model.add_argument("--by", required=True, help="who rolls back (recorded on the version)")
    model.add_argument("--reason", required=True, help="why (recorded on the version)")
    model.add_argument("--to", default=None, help="the version to make champion (default: previous)")
    model.add_argument("--mlflow-conn-id", default="mlflow_default")
    model.set_defaults(func=_model)
    lineage = sub.add_parser("lineage", help="what a model version was made from: sources, snapshots, gate, run")
    lineage.add_argument("model", help="MODEL@VERSION, e.g. churn@3")
    lineage.add_argument("--limit", type=int, default=50, help="raw batches to list, newest first")
    lineage.add_argument("--json", action="store_true", help="the chain as JSON")
    lineage.add_argument("--iceberg-conn-id", default="iceberg_default")
    lineage.add_argument("--mlflow-conn-id", default="mlflow_default")
    lineage.set_defaults(func=_lineage)
    replay_cmd = sub.add_parser("replay", help="train a model version again from what it recorded; compare metrics")
    replay_cmd.add_argument("model", help="MODEL@VERSION, e.g. churn@3")
    replay_cmd.add_argument("--tolerance", type=float, default=0.0,
                            help="largest metric difference accepted (exit 1 above it); 0: identical")  # fmt: skip
    replay_cmd.add_argument("--json", action="store_true", help="the comparison as JSON")
    replay_cmd.add_argument("--iceberg-conn-id", default="iceberg_default")
    replay_cmd.add_argument("--mlflow-conn-id", default="mlflow_default")
    replay_cmd.set_defaults(func=_replay)
    secrets = sub.add_parser("check-secrets", help="refuse placeholder or short secrets before a deployment starts")
    secrets.add_argument("names", nargs="+", metavar="VAR[:MIN_LENGTH]",
                         help="environment variables to check (default minimum length 16)")  # fmt: skip
    secrets.set_defaults(func=_check_secrets)
    gx = sub.add_parser("gx", help="Great Expectations context helpers")
    gx.add_argument("action", choices=["init", "scaffold"], help="init: create a context; scaffold: checkpoints")
    gx.add_argument("suite", nargs="?", default=None, help="scaffold: an expectation suite of the context")
    gx.add_argument("--context-root", default=None, help="default: $MLOPS_OPS_GX_ROOT or great_expectations/")
    gx.set_defaults(func=_gx)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MlopsOpsError as err:
        print(f"mlops-ops: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
