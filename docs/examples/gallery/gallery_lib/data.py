"""Synthetic data with a learnable signal for each gallery pipeline, and a shifted variant for the drift check."""

from __future__ import annotations

import csv
import io
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

NEIGHBORHOODS = {"riverside": 40_000, "old_town": 25_000, "hillcrest": 60_000, "eastgate": 0, "harbor": 35_000}
CHANNELS = ("email", "chat", "phone", "web")
PLANS = ("free", "pro", "enterprise")
PURPOSES = ("car", "home", "education", "business", "debt")


def houses(n: int, seed: int, *, shifted: bool = False) -> list[dict[str, Any]]:
    """House listings; the price depends on size, bedrooms, neighborhood, garage and age (and noise)."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        sqft = rng.uniform(600, 3500) * (1.4 if shifted else 1.0)
        bedrooms = max(1, int(sqft // 700) + rng.randint(-1, 1))
        hood = rng.choice(list(NEIGHBORHOODS)[:2] if shifted else list(NEIGHBORHOODS))
        garage = rng.random() < 0.55
        year_built = rng.randint(1950, 2024)
        price = (50_000 + 140 * sqft + 9_000 * bedrooms + NEIGHBORHOODS[hood] + (18_000 if garage else 0)
                 - 400 * (2026 - year_built) + rng.gauss(0, 15_000))  # fmt: skip
        rows.append({"house_id": f"h{seed}-{i:06d}", "sqft": round(sqft, 1), "bedrooms": bedrooms,
                     "neighborhood": hood, "has_garage": garage, "year_built": year_built,
                     "listed_at": start + timedelta(minutes=17 * i),
                     "price": round(price * (1.3 if shifted else 1.0), 2)})  # fmt: skip
    return rows


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def tickets(n: int, seed: int, *, shifted: bool = False) -> list[dict[str, Any]]:
    """Support tickets; the queue (billing, technical, account) follows from what the first message mentions."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        queue = rng.choices(["billing", "technical", "account"], weights=[3, 4, 2] if not shifted else [1, 1, 6])[0]
        invoice = rng.random() < (0.8 if queue == "billing" else 0.1)
        errors = rng.randint(1, 6) if queue == "technical" and rng.random() < 0.85 else rng.randint(0, 1)
        attachment = rng.random() < (0.6 if queue == "technical" else 0.2)
        password = rng.random() < (0.75 if queue == "account" else 0.08)
        rows.append({"ticket_id": f"t{seed}-{i:06d}", "channel": rng.choice(CHANNELS), "plan": rng.choice(PLANS),
                     "words": rng.randint(5, 400), "has_attachment": attachment, "mentions_invoice": invoice,
                     "mentions_password": password, "error_codes": errors,
                     "account_age_days": round(rng.expovariate(1 / 300), 1),
                     "opened_at": (start + timedelta(minutes=7 * i)).isoformat(), "queue": queue})  # fmt: skip
    return rows


def loans(n: int, seed: int, *, shifted: bool = False) -> list[dict[str, Any]]:
    """Loan applications; ``outcome`` is "default" or "repaid" (about 1 in 6 default)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        income = rng.lognormvariate(10.8, 0.45) * (0.7 if shifted else 1.0)
        amount = rng.uniform(2_000, 40_000)
        ratio = amount / income
        score = min(850.0, max(300.0, rng.gauss(680, 60) - (40 if shifted else 0)))
        late = rng.choices([0, 1, 2, 3], weights=[70, 15, 10, 5])[0]
        purpose = rng.choice(PURPOSES)
        risk = -2.6 + 3.0 * ratio - 0.012 * (score - 680) + 0.55 * late + (0.5 if purpose == "business" else 0.0)
        outcome = "default" if rng.random() < 1 / (1 + math.exp(-risk)) else "repaid"
        rows.append({"application_id": f"a{seed}-{i:06d}", "income": round(income, 2), "amount": round(amount, 2),
                     "credit_score": round(score), "late_payments": late, "purpose": purpose,
                     "employed": rng.random() < 0.85, "outcome": outcome})  # fmt: skip
    return rows


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: str(v).lower() if isinstance(v, bool) else v for k, v in row.items()})
    return buffer.getvalue().encode()
