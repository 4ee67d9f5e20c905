from __future__ import annotations

import threading
from typing import Any

import pytest

from mlops_ops.training.registry import LOCK_SUFFIX, registry_lock


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("registry") / "mlflow.db"
    return MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")


def test_a_lock_released_while_the_store_words_its_conflict_is_taken_not_an_error(client: Any) -> None:
    """MLflow's store answers a unique-name conflict by re-reading the existing model; a holder that releases in
    between turns that read into RESOURCE_DOES_NOT_EXIST (seen in CI with five promotions at once)."""
    store = client._get_registry_client().store
    lock = "released" + LOCK_SUFFIX
    client.create_registered_model(lock, tags={"token": "other", "since": "9e99"})
    real_get = store.get_registered_model
    released = threading.Event()

    def holder_releases_first(name: str) -> Any:
        if name == lock and not released.is_set():
            released.set()
            store.delete_registered_model(lock)  # the holder lets go between the conflict and the re-read
        return real_get(name)

    store.get_registered_model = holder_releases_first
    try:
        with registry_lock(client, "released", "me", timeout_s=10):
            assert client.get_registered_model(lock).tags["owner"] == "me"
    finally:
        del store.get_registered_model
    assert released.is_set()
    assert client.search_registered_models(f"name = '{lock}'") == []


def test_the_lock_serialises_holders_and_is_gone_after(client: Any) -> None:
    inside: list[int] = []
    overlap: list[int] = []

    def hold(i: int) -> None:
        with registry_lock(client, "serial", f"t{i}", timeout_s=60):
            if inside:
                overlap.append(i)
            inside.append(i)
            inside.remove(i)

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert overlap == []
    assert client.search_registered_models(f"name = 'serial{LOCK_SUFFIX}'") == []


def test_a_holder_whose_lock_was_taken_over_writes_nothing(client: Any) -> None:
    """Two waiters that both judged a stale lock dead can both create one in turn (MLflow has no conditional
    delete): the one whose token the lock no longer carries finds out before it writes."""
    from mlops_ops.training.registry import LockLostError

    lock = "taken" + LOCK_SUFFIX
    with registry_lock(client, "taken", "slow", timeout_s=10) as still_held:
        still_held()
        client.delete_registered_model(lock)  # the other waiter removed "the stale lock" ...
        client.create_registered_model(
            lock, tags={"owner": "fast", "token": "theirs", "since": "9e99"}
        )  # ... and took it
        with pytest.raises(LockLostError, match="taken over by fast"):
            still_held()
    assert client.get_registered_model(lock).tags["token"] == "theirs"  # ours never deletes another holder's lock
