"""A seeded synthetic customer-churn table, standing in for an extract from a source system.

The same seed gives the same table byte for byte (DVC's hashes stay put), and `shift`
moves the distribution on purpose (pricier plans, shorter tenure, more support calls,
more month-to-month contracts) so the drift monitoring has something real to find.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["card", "bank-transfer", "electronic-check", "mailed-check"]
INTERNET = ["fiber", "dsl", "none"]
TARGET = "churned"


def make_customers(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """rows customers; shift in [0, 1] moves every feature's distribution the same way."""
    rng = np.random.default_rng(seed)
    contract_p = np.array([0.5 + 0.4 * shift, 0.3 - 0.2 * shift, 0.2 - 0.2 * shift]).clip(0.01)
    contract = rng.choice(CONTRACTS, size=rows, p=contract_p / contract_p.sum())
    tenure = rng.gamma(shape=2.0, scale=14.0 * (1 - 0.5 * shift), size=rows).clip(0, 72).round()
    monthly = rng.normal(65 + 30 * shift, 20, size=rows).clip(18, 140).round(2)
    support_calls = rng.poisson(1.2 + 2.5 * shift, size=rows)
    internet = rng.choice(INTERNET, size=rows, p=[0.45, 0.4, 0.15])
    payment = rng.choice(PAYMENTS, size=rows, p=[0.3, 0.25, 0.3, 0.15])
    age = rng.integers(18, 86, size=rows)
    products = rng.integers(1, 6, size=rows)
    total = (tenure * monthly * rng.normal(1.0, 0.05, size=rows)).round(2)

    logit = (
        -1.6
        + 2.0 * (contract == "month-to-month")
        - 1.3 * (contract == "two-year")
        - 0.06 * tenure
        + 0.03 * (monthly - 65)
        + 0.6 * support_calls
        + 0.7 * (payment == "electronic-check")
        + 0.5 * (internet == "fiber")
        - 0.2 * (products - 1)
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "customer_id": [f"c{seed:04d}-{i:06d}" for i in range(rows)],
            "tenure_months": tenure.astype(int),
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": support_calls.astype(int),
            "num_products": products.astype(int),
            "age": age.astype(int),
            "contract": contract,
            "payment_method": payment,
            "internet_service": internet,
            TARGET: churned.astype(int),
        }
    )
