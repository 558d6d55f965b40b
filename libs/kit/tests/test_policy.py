"""T7 and M3: who may see an account's threads and internal content."""

import pytest

from threadline.kit.auth import Principal
from threadline.kit.policy import (
    ThreadFacts,
    can_access_account,
    can_see_internal,
    can_view_thread,
    visible_account_filter,
)

THREAD = ThreadFacts(firm="firm_a", account_id="acc_1", mentioned_staff=("st_mentioned",))

PRINCIPALS = {
    "owner": Principal(sub="st_o", firm="firm_a", kind="staff", role="owner"),
    "admin": Principal(sub="st_a", firm="firm_a", kind="staff", role="admin"),
    "assigned member": Principal(
        sub="st_m", firm="firm_a", kind="staff", role="member", accounts=frozenset({"acc_1"})
    ),
    "unassigned member": Principal(sub="st_u", firm="firm_a", kind="staff", role="member"),
    "member with view-all": Principal(
        sub="st_v",
        firm="firm_a",
        kind="staff",
        role="member",
        perms=frozenset({"view_all_accounts"}),
    ),
    "mentioned member": Principal(sub="st_mentioned", firm="firm_a", kind="staff", role="member"),
    "client of the account": Principal(
        sub="ct_1", firm="firm_a", kind="client", accounts=frozenset({"acc_1"})
    ),
    "client of another account": Principal(
        sub="ct_2", firm="firm_a", kind="client", accounts=frozenset({"acc_2"})
    ),
    "owner of another firm": Principal(sub="st_x", firm="firm_b", kind="staff", role="owner"),
    "client of another firm, same account id": Principal(
        sub="ct_x", firm="firm_b", kind="client", accounts=frozenset({"acc_1"})
    ),
}

EXPECTED_VIEW = {
    "owner": True,
    "admin": True,
    "assigned member": True,
    "unassigned member": False,
    "member with view-all": True,
    "mentioned member": True,
    "client of the account": True,
    "client of another account": False,
    "owner of another firm": False,
    "client of another firm, same account id": False,
}


@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_t7_thread_visibility(who: str) -> None:
    assert can_view_thread(PRINCIPALS[who], THREAD) is EXPECTED_VIEW[who]


def test_t7_mention_grants_the_thread_not_the_account() -> None:
    mentioned = PRINCIPALS["mentioned member"]
    assert not can_access_account(mentioned, firm="firm_a", account_id="acc_1")


@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_m3_only_staff_see_internal_content(who: str) -> None:
    assert can_see_internal(PRINCIPALS[who]) is PRINCIPALS[who].is_staff


def test_list_filters_restrict_members_and_clients_to_their_accounts() -> None:
    assert visible_account_filter(PRINCIPALS["owner"]) is None
    assert visible_account_filter(PRINCIPALS["member with view-all"]) is None
    assert visible_account_filter(PRINCIPALS["assigned member"]) == {"acc_1"}
    assert visible_account_filter(PRINCIPALS["client of another account"]) == {"acc_2"}
