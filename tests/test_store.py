import sqlite3
from pathlib import Path

from bot.store import Store


def test_pseudonyms_are_stable_keyed_and_do_not_contain_the_id() -> None:
    one, other = Store(":memory:", "key-one"), Store(":memory:", "key-two")
    key = one.pseudonym("telegram", "123456789")
    assert key == one.pseudonym("telegram", "123456789")
    assert key != other.pseudonym("telegram", "123456789")
    assert key != one.pseudonym("matrix", "123456789")
    assert "123456789" not in key


def test_person_round_trip_and_choice_of_language_is_kept() -> None:
    store = Store(":memory:", "k")
    store.save_person("p", language="ar", last_topic="housing.find_flat", failures=1, language_chosen=True)
    store.save_person("p", language="ar", last_topic=None, failures=0)
    person = store.person("p")
    assert person is not None
    assert (person.language, person.language_chosen, person.last_topic, person.failures) == ("ar", True, None, 0)


def test_feedback_is_stored_per_topic_and_language_without_text() -> None:
    store = Store(":memory:", "k")
    answer = store.record_answer("family.childcare", "tr", 0.8, "answered")
    assert store.record_feedback(answer, helpful=True)
    assert store.feedback_summary() == [("family.childcare", "tr", 1, 0)]
    columns = [row[1] for row in store.db.execute("PRAGMA table_info(answers)").fetchall()]
    assert not {"text", "user", "chat", "person"} & set(columns)


def test_purge_removes_inactive_people_from_the_file(tmp_path: Path) -> None:
    now = [1_000_000.0]
    path = tmp_path / "bot.db"
    store = Store(str(path), "k", clock=lambda: now[0])
    store.save_person("old-person-key", language="uk", last_topic=None, failures=0)
    now[0] += 181 * 86400
    store.save_person("new-person-key", language="de", last_topic=None, failures=0)
    assert store.purge(180) == 1
    assert store.person("old-person-key") is None and store.person("new-person-key") is not None
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    assert b"old-person-key" not in path.read_bytes()


def test_schema_is_versioned_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = str(tmp_path / "bot.db")
    store = Store(path, "k")
    store.save_person("p", language="fa", last_topic=None, failures=0)
    version = store.schema_version
    store.close()
    again = Store(path, "k")
    assert again.schema_version == version >= 1
    assert again.person("p") is not None
    assert sqlite3.connect(path).execute("PRAGMA secure_delete").fetchone() is not None
