"""Per-thread numbering turns within one process (the store's unique indexes arbitrate
between processes; see tests/integration/messaging/test_numbering.py)."""

import asyncio

from threadline.messaging.service.messages import ThreadNumbering


async def test_posts_to_one_thread_take_turns_and_see_the_numbers_stored_before() -> None:
    numbering = ThreadNumbering()
    seen: list[tuple[int, int]] = []

    async def post(internal: bool) -> None:
        async with numbering.turn("th") as turn:
            seen.append(turn.last)
            await asyncio.sleep(0)  # the insert
            seq, client = turn.last[0] + 1, turn.last[1] + (0 if internal else 1)
            turn.stored(seq, client)
            await asyncio.sleep(0)  # the thread's update runs after the turn ended

    await asyncio.gather(*(post(internal=i % 2 == 1) for i in range(6)))
    assert seen == [(0, 0), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3)]


async def test_other_threads_do_not_wait_and_a_failed_insert_remembers_nothing() -> None:
    numbering = ThreadNumbering()
    async with numbering.turn("a"):
        async with asyncio.timeout(1):  # "b" is not behind "a"'s turn
            async with numbering.turn("b") as turn:
                turn.stored(7, 3)
    try:
        async with numbering.turn("a"):
            raise ConnectionError("the insert failed")
    except ConnectionError:
        pass
    async with numbering.turn("a") as turn:
        assert turn.last == (0, 0), "a turn that stored nothing leaves nothing behind"
    async with numbering.turn("b") as turn:
        assert turn.last == (7, 3)


async def test_only_the_most_recently_posted_threads_are_remembered() -> None:
    numbering = ThreadNumbering(remembered=2)
    for thread, seq in (("a", 1), ("b", 1), ("a", 2), ("c", 1)):
        async with numbering.turn(thread) as turn:
            turn.stored(seq, seq)
    remembered = {}
    for thread in ("a", "b", "c"):
        async with numbering.turn(thread) as turn:
            remembered[thread] = turn.last
    assert remembered == {"a": (2, 2), "b": (0, 0), "c": (1, 1)}
