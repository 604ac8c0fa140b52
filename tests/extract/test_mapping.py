"""The ``map`` section of the sources file: every mistake is one clear line naming where, before data moves."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
import yaml
from lens_cli import run_lens

from customer_lens.config import contract, source_config

HEADER = "id,who,at,scale,score\n"


def _document(location: Path, mapping: dict) -> dict:
    return {
        "sources": {
            "survey": {
                "kind": "files",
                "format": "csv",
                "location": str(location),
                "entities": {
                    "responses": {
                        "glob": "export_*.csv",
                        "file_date": "export_%Y-%m-%d.csv",
                        "primary_key": ["response_id"],
                        "columns": {
                            "response_id": {"source": "id", "type": "text", "required": True},
                            "customer_ref": {"source": "who", "type": "text", "required": True},
                            "submitted_at": {"source": "at", "type": "timestamptz", "required": True},
                            "scale": "text",
                            "score": "integer",
                        },
                        "map": mapping,
                    }
                },
            }
        }
    }


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"kinds": "scale"}, "map.kinds: survey.responses has no column 'kinds'"),
        ({"kind": "scal"}, "map.kind: 'scal' is not a declared column of this entity"),
        ({"kind": {"column": "scal", "values": {"1-5": "csat"}}}, "map.kind: 'scal' is not a declared column"),
        ({"response_id": "scale"}, "map.response_id: response_id is a key"),
        ({"submitted_at": "scale"}, "map.submitted_at: submitted_at is also a declared column"),
        ({"kind": {"value": "csat", "sql": "'nps'"}}, "map.kind: give a column name, or exactly one of"),
        ({"kind": {"sql": "'x'; drop table y"}}, "map.kind: sql: must be one SQL expression"),
        ({"kind": {"column": "scale", "values": {"1-5": "cast"}}}, "map.kind: 'cast' is not one of nps, csat"),
        ({"kind": {"value": "NPS"}}, "map.kind: 'NPS' is not one of nps, csat"),
    ],
)
def test_a_bad_map_entry_is_a_config_error_naming_it(tmp_path: Path, mapping: dict, message: str) -> None:
    with pytest.raises(source_config.ConfigError) as raised:
        source_config.parse(_document(tmp_path, mapping))
    assert str(raised.value).startswith("sources.survey.entities.responses.")
    assert message in str(raised.value)


def test_a_map_on_an_entity_outside_the_contract_is_refused(tmp_path: Path) -> None:
    document = _document(tmp_path, {"kind": {"value": "csat"}})
    document["sources"]["survey"]["entities"]["answers"] = document["sources"]["survey"]["entities"].pop("responses")
    with pytest.raises(source_config.ConfigError, match=r"survey\.answers is not a Customer Lens entity"):
        source_config.parse(document)


def test_each_form_renders_to_sql_of_the_contract_type(tmp_path: Path) -> None:
    mapping = {
        "kind": {"column": "scale", "values": {"1-5": "csat", "0-10": "nps"}, "default": "exit"},
        "csat_score": {"sql": "case when scale = '1-5' then score end"},
        "nps_score": "score",
        "language": {"value": "it's"},
    }
    entity = source_config.parse(_document(tmp_path, mapping))["survey"].entity("responses")
    assert contract.rendered("survey.responses", entity.mappings) == {
        "kind": """(case "scale"::text when '1-5' then 'csat' when '0-10' then 'nps' else 'exit' end)::text""",
        "csat_score": "(case when scale = '1-5' then score end)::integer",
        "nps_score": '("score")::integer',
        "language": "('it''s')::text",
    }


def test_a_reference_from_a_text_id_meets_the_key_derived_from_the_same_text(tmp_path: Path, make_database) -> None:
    """``order_id: {key_from: order_no}`` on a survey answer gives the id a transaction file's order gets
    from the same invoice text; it is applied in staging (not a generated column of the raw table)."""
    document = _document(tmp_path, {"kind": {"value": "csat"}, "order_id": {"key_from": "scale"}})
    entity = source_config.parse(document)["survey"].entity("responses")
    assert contract.key_columns(entity) == {}
    reference = contract.rendered("survey.responses", entity.mappings)["order_id"]
    assert (
        '"scale"'
        in json.loads(contract.dbt_mappings({"survey": source_config.parse(document)["survey"]}))[
            "raw_survey.responses"
        ]["order_id"]
    )
    with psycopg.connect(make_database("reference_key_wh")) as conn:
        derived, referenced = conn.execute(
            f"select {contract.text_key('order_ref')}, {reference} from (select '536365'::text as order_ref, "
            f"'536365'::text as scale) as row"
        ).fetchone()
    assert derived == referenced and derived > 0
    with pytest.raises(source_config.ConfigError, match=r"map\.language: key_from: is for ids"):
        source_config.parse(_document(tmp_path, {"language": {"key_from": "scale"}}))


def test_an_answer_needs_a_customer_or_the_order_it_rates(tmp_path: Path) -> None:
    document = _document(tmp_path, {"kind": {"value": "csat"}})
    del document["sources"]["survey"]["entities"]["responses"]["columns"]["customer_ref"]
    found = contract.problems(source_config.parse(document))
    assert found == [
        "sources.survey.entities.responses: the data contract needs one of customer_ref or order_id: "
        "declare or map it (docs/data-contract.md)"
    ]
    document["sources"]["survey"]["entities"]["responses"]["map"]["order_id"] = {"sql": "score"}
    assert contract.problems(source_config.parse(document)) == []


def test_a_bad_expression_stops_the_load_before_any_data_moves(tmp_path: Path, make_database) -> None:
    wh = make_database("mapping_check_wh")
    files = tmp_path / "survey"
    files.mkdir()
    (files / "export_2026-01-01.csv").write_text(HEADER + "r1,c1,2026-01-01T10:00:00Z,1-5,4\n")
    config = tmp_path / "sources.yml"
    env = {"LENS_WAREHOUSE_URL": wh, "LENS_SOURCES_CONFIG": str(config), "LENS_STATE_DIR": str(tmp_path / "state")}

    config.write_text(
        yaml.safe_dump(_document(files, {"csat_score": {"sql": "case when scael = '1-5' then score end"}}))
    )
    failed = run_lens("extract", "--start", "2026-01-01", "--end", "2026-01-02", env=env, check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith('error: sources.survey.entities.responses.map.csat_score: column "scael"')
    assert "Traceback" not in failed.stderr
    with psycopg.connect(wh) as conn:
        assert conn.execute(
            "select to_regclass('raw_survey.responses'), to_regclass('raw_survey._batches')"
        ).fetchone() == (
            None,
            None,
        )

    # A result that does not cast to the contract's type is caught the same way.
    config.write_text(yaml.safe_dump(_document(files, {"csat_score": {"sql": "now()"}})))
    failed = run_lens("extract", "--start", "2026-01-01", "--end", "2026-01-02", env=env, check=False)
    assert failed.returncode == 1 and "map.csat_score: cannot cast" in failed.stderr

    config.write_text(
        yaml.safe_dump(_document(files, {"csat_score": {"sql": "case when scale = '1-5' then score end"}}))
    )
    run_lens("extract", "--start", "2026-01-01", "--end", "2026-01-02", env=env)
    with psycopg.connect(wh) as conn:
        assert conn.execute("select response_id, scale, score from raw_survey.responses").fetchall() == [
            ("r1", "1-5", 4)
        ]


def test_the_documented_contract_is_the_enforced_one() -> None:
    """docs/data-contract.md lists exactly the entities, columns, types and needs of contract.ENTITIES."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "data-contract.md").read_text()
    documented: dict[str, list[tuple]] = {}
    entity = None
    for line in text.splitlines():
        if line.startswith("### `"):
            entity = line.strip("#` ")
            documented[entity] = []
        elif entity and line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            documented[entity].append((cells[0].strip("`"), cells[1], cells[2], cells[3]))
    expected = {
        key: [
            (f.name, f.type, "key" if f.key else "required" if f.required else "optional", f.values)
            for f in fields.values()
        ]
        for key, fields in contract.ENTITIES.items()
    }
    assert {key: [row[:3] for row in rows] for key, rows in documented.items()} == {
        key: [row[:3] for row in rows] for key, rows in expected.items()
    }
    for key, rows in expected.items():
        for (name, _, _, values), (_, _, _, meaning) in zip(rows, documented[key], strict=True):
            if values:
                assert meaning.endswith(f"one of {', '.join(values)}"), f"{key}.{name}"


@pytest.mark.parametrize("example", sorted((Path(__file__).resolve().parents[2] / "config" / "examples").glob("*.yml")))
def test_the_examples_parse(example: Path) -> None:
    assert source_config.load(example)


def test_a_changed_column_type_says_how_to_migrate(tmp_path: Path, make_database) -> None:
    wh = make_database("type_change_wh")
    files = tmp_path / "survey"
    files.mkdir()
    (files / "export_2026-01-01.csv").write_text(HEADER + "r1,c1,2026-01-01T10:00:00Z,1-5,4\n")
    (files / "export_2026-01-02.csv").write_text(HEADER + "r2,c2,2026-01-02T10:00:00Z,1-5,4.5\n")
    config = tmp_path / "sources.yml"
    env = {"LENS_WAREHOUSE_URL": wh, "LENS_SOURCES_CONFIG": str(config), "LENS_STATE_DIR": str(tmp_path / "state")}
    document = _document(files, {"csat_score": "score"})
    config.write_text(yaml.safe_dump(document))
    run_lens("extract", "--start", "2026-01-01", "--end", "2026-01-02", env=env)

    # The export starts sending half points: the user makes the column numeric.
    document["sources"]["survey"]["entities"]["responses"]["columns"]["score"] = "numeric"
    document["sources"]["survey"]["entities"]["responses"]["map"] = {"csat_score": {"sql": "round(score)"}}
    config.write_text(yaml.safe_dump(document))
    refused = run_lens("extract", "--start", "2026-01-02", "--end", "2026-01-03", env=env, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    message = refused.stderr
    assert "sources.survey.entities.responses.columns.score is numeric in the sources file" in message
    assert "raw_survey.responses.score holds integer values loaded before" in message
    statement = message.split("): ", 1)[1].split(";")[0]
    assert statement == "alter table raw_survey.responses alter column score type numeric using score::numeric"

    with psycopg.connect(wh, autocommit=True) as conn:
        conn.execute(statement)
    run_lens("extract", "--start", "2026-01-02", "--end", "2026-01-03", env=env)
    with psycopg.connect(wh) as conn:
        scores = conn.execute("select response_id, score::text from raw_survey.responses order by 1").fetchall()
    assert scores == [("r1", "4"), ("r2", "4.5")]
