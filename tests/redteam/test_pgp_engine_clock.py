"""Hardening: PGP key expiry is judged at the engine's clock (``ctx.now``), not gpg's.

The engine reads the clock once and every check uses that reading; gpg used its
own clock, so a key could be valid for the Git checks and expired for the chart
provenance of the same run (or the reverse), and a run with an injected clock was
not judged at that clock at all. ``PgpKeyring(keys, now)`` freezes gpg at
``now`` (``--faked-system-time <epoch>!``, gpg/gpgv 2.2.40 here).

The "expired" test key is made with gpg believing it is 2020-06-01, expiring 30 days
later; the signatures by it are from 2020-06-01 too.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gate.errors import VerificationError
from gate.evidence.helm_prov import verify_provenance
from gate.evidence.sigtools import KeyExpiredError, PgpKeyring
from testkit.chartrepo import ChartRepoServer
from testkit.helmcharts import Helm, PackagedChart, build_signed_chart
from testkit.pgp import PgpKey, PgpKeyFactory
from tests.integration.test_charts_support import pgp_entry, write_chart_source
from tests.unit.helpers import make_policy

pytestmark = pytest.mark.integration

BEFORE_EXPIRY = dt.datetime(2020, 6, 15, tzinfo=dt.UTC)
AFTER_EXPIRY = dt.datetime(2020, 7, 2, tzinfo=dt.UTC)
BEFORE_CREATION = dt.datetime(2020, 5, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def expiring(pgp_keys: PgpKeyFactory) -> PgpKey:
    return pgp_keys("Expiring Signer", expired=True)


@pytest.fixture(scope="module")
def expiring_chart(
    helm_tool: Helm, expiring: PgpKey, tmp_path_factory: pytest.TempPathFactory
) -> PackagedChart:
    return build_signed_chart(helm_tool, tmp_path_factory.mktemp("exp"), expiring)


def _verify(key: PgpKey, now: dt.datetime | None) -> str:
    data = b"payload\n"
    with PgpKeyring({"k": key.public_armored().decode()}, now) as keyring:
        return keyring.verify(data, key.sign_detached(data)).primary_fingerprint


def test_key_verifies_before_its_expiry_at_the_engine_clock(expiring: PgpKey) -> None:
    assert _verify(expiring, BEFORE_EXPIRY) == expiring.fingerprint


@pytest.mark.parametrize("now", [AFTER_EXPIRY, None], ids=["engine-clock", "gpg-clock"])
def test_key_expired_at_the_engine_clock_is_key_expired(
    expiring: PgpKey, now: dt.datetime | None
) -> None:
    with pytest.raises(KeyExpiredError) as err:
        _verify(expiring, now)
    assert err.value.reason == "key-expired"


def test_key_not_yet_created_at_the_engine_clock_does_not_verify(expiring: PgpKey) -> None:
    # gpg cannot use a key that does not exist yet at ``now`` (ERRSIG): a deny.
    with pytest.raises(VerificationError) as err:
        _verify(expiring, BEFORE_CREATION)
    assert err.value.reason in ("bad-signature", "untrusted-signer")


def test_chart_provenance_is_judged_at_the_given_clock(
    expiring_chart: PackagedChart, expiring: PgpKey
) -> None:
    assert expiring_chart.prov is not None
    prov, archive = expiring_chart.prov.read_bytes(), expiring_chart.tgz.read_bytes()
    keys = {"charts": expiring.public_armored().decode()}
    ok = verify_provenance(
        prov, archive, name="demo", version="0.1.0", keys=keys, now=BEFORE_EXPIRY
    )
    assert ok.signer_fingerprint == expiring.fingerprint
    with pytest.raises(KeyExpiredError):
        verify_provenance(prov, archive, name="demo", version="0.1.0", keys=keys, now=AFTER_EXPIRY)


def test_engine_clock_reaches_the_chart_verifier(
    tmp_path: Path, chart_repo: ChartRepoServer, expiring_chart: PackagedChart, expiring: PgpKey
) -> None:
    from gate.charts import HelmChartVerifier
    from gate.engine import Context, Findings, GateRequest, SourceInfo
    from gate.report import Report

    chart_repo.add(expiring_chart)
    src = write_chart_source(
        tmp_path / "app", [{"name": "demo", "version": "0.1.0", "repository": chart_repo.url}]
    )
    policy = make_policy(
        {
            "keys": {"charts": pgp_entry(expiring)},
            "charts": [{"match": [f"{chart_repo.url}/**"], "provenance": {"signers": ["charts"]}}],
            "registries": [{"host": f"127.0.0.1:{chart_repo.port}", "insecure": True}],
        }
    )
    outcomes = {}
    for label, now in (("before", BEFORE_EXPIRY), ("after", AFTER_EXPIRY)):
        report = Report(
            policy_name=policy.name,
            policy_digest=policy.digest,
            source_path=str(src),
            revision=None,
            repo=None,
        )
        ctx = Context(policy, GateRequest(SourceInfo(src)), now, Findings(report))
        charts = HelmChartVerifier().verify_charts(ctx)
        outcomes[label] = (
            len(charts),
            [(f.outcome, f.reason) for f in report.findings if f.check == "chart.provenance"],
        )
    assert outcomes["before"] == (1, [("pass", "verified")])
    assert outcomes["after"] == (0, [("fail", "key-expired")])
