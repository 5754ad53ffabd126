"""The benchmark payloads: valid where they must be, numbers where the client slices them."""

from __future__ import annotations

import json

import pytest

from bench import payload


@pytest.mark.parametrize("kind", payload.KINDS)
def test_every_kind_carries_its_sequence_number_and_send_time_at_its_layout(kind: str) -> None:
    message = payload.MAKERS[kind](4321)
    layout = payload.LAYOUTS[kind]

    assert int(message[layout.seq]) == 4321
    assert int(message[layout.sent_ns]) > 0


def test_json1k_is_json_text_of_1024_bytes_whose_numbers_are_the_sliced_ones() -> None:
    message = payload.make_json1k(99_999_999)
    layout = payload.LAYOUTS[payload.JSON1K]

    document = json.loads(message)

    assert len(message) == 1024
    assert document["seq"] == int(message[layout.seq]) == 99_999_999
    assert document["sent_ns"] == int(message[layout.sent_ns])
    assert [m["author"]["name"] for m in document["messages"]] == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]


def test_the_kind_comes_from_the_environment_and_a_wrong_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(payload.ENV, raising=False)
    assert payload.maker_from_env() is payload.make

    monkeypatch.setenv(payload.ENV, payload.JSON1K)
    assert payload.maker_from_env() is payload.make_json1k

    monkeypatch.setenv(payload.ENV, "json2k")
    with pytest.raises(ValueError, match="json2k"):
        payload.kind_from_env()
