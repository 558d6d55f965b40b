"""Dev tools: minted tokens verify with the kit; the demo directory has what the issue needs."""

import pytest

from threadline.contracts.events.directory import (
    AccountUpserted,
    FirmUpserted,
    StaffMemberUpserted,
)
from threadline.devtools.seed import DEMO_FIRM_NAME, demo_directory
from threadline.devtools.token import main, mint_token
from threadline.kit.auth import TokenVerifier

SECRET = "test-secret-for-devtools-0123456789abc"


def verifier() -> TokenVerifier:
    return TokenVerifier(issuer="threadline-local", audience="threadline", secret=SECRET)


def test_minted_staff_and_client_tokens_verify() -> None:
    staff = mint_token(
        sub="st_mia",
        firm="firm_demo",
        kind="staff",
        role="member",
        perms=["view_all_accounts"],
        secret=SECRET,
        issuer="threadline-local",
        audience="threadline",
    )
    principal = verifier().verify(staff)
    assert principal.role == "member" and principal.has_perm("view_all_accounts")
    client = mint_token(
        sub="ct_ann",
        firm="firm_demo",
        kind="client",
        accounts=["acc_lee_family"],
        secret=SECRET,
        issuer="threadline-local",
        audience="threadline",
    )
    assert verifier().verify(client).accounts == {"acc_lee_family"}


def test_cli_refuses_client_tokens_without_accounts_or_with_roles() -> None:
    with pytest.raises(SystemExit, match="account"):
        main(["--kind", "client"])
    with pytest.raises(SystemExit, match="role"):
        main(["--kind", "client", "--role", "owner", "--account", "acc_1"])


def test_demo_directory_has_owner_admin_two_members_and_several_accounts() -> None:
    events = demo_directory("firm_x")
    staff = [e.data for e in events if isinstance(e.data, StaffMemberUpserted)]
    accounts = [e.data for e in events if isinstance(e.data, AccountUpserted)]
    assert sorted(member.role for member in staff) == ["admin", "member", "member", "owner"]
    assert len(accounts) >= 3
    assert all(e.firm == "firm_x" for e in events)
    contacts = [c for account in accounts for c in account.contacts]
    assert {(c.portal_activated, c.notify) for c in contacts} >= {
        (True, True),
        (True, False),
        (False, True),
    }
    assert all(e.key == e.data.account_id for e in events if isinstance(e.data, AccountUpserted))


def test_p1_demo_directory_names_the_firm_before_its_staff() -> None:
    """The firm's name feeds the ``[[firm.name]]`` shortcode; it shares the firm-keyed
    partition with the staff events and comes first, so a projection holding the staff
    holds the name too."""
    events = demo_directory("firm_x")
    firm_keyed = [e for e in events if e.key == "firm_x"]
    assert isinstance(firm_keyed[0].data, FirmUpserted)
    assert firm_keyed[0].data.name == DEMO_FIRM_NAME
    assert all(isinstance(e.data, StaffMemberUpserted) for e in firm_keyed[1:])
