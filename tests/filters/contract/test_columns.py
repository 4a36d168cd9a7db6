"""The explicit column lists of raw, clean and reject shards."""

import pyarrow as pa

from filters import contract


def test_clean_and_reject_schemas_follow_the_contract():
    for column in ("key", "url", "caption", "image", "width", "height", "sha256", "query"):
        assert column in contract.CLEAN_SCHEMA.names
    # Clean shards are published: the caption as found (names in clear) stays in internal shards.
    assert "caption_raw" not in contract.CLEAN_SCHEMA.names
    assert "caption_raw" in contract.RAW_SCHEMA.names and "caption_raw" in contract.REJECT_SCHEMA.names
    assert "image" not in contract.REJECT_SCHEMA.names
    assert "drop_reason" in contract.REJECT_SCHEMA.names
    assert contract.CLEAN_SCHEMA.field("image").type == pa.binary()


def test_every_kind_lists_its_columns_in_its_schema():
    assert tuple(contract.RAW_SCHEMA.names) == contract.RAW_COLUMNS
    assert tuple(contract.CLEAN_SCHEMA.names) == contract.CLEAN_COLUMNS
    assert tuple(contract.REJECT_SCHEMA.names) == contract.REJECT_COLUMNS
    assert "status" not in contract.CLEAN_COLUMNS and "error_message" not in contract.CLEAN_COLUMNS


def test_the_documented_import_path_reexports_the_contract():
    from pipelines import schema

    assert schema.RAW_SCHEMA is contract.RAW_SCHEMA and schema.CLEAN_SCHEMA is contract.CLEAN_SCHEMA
    assert schema.ShardWriter is contract.ShardWriter


def test_a_schema_takes_each_column_from_its_one_definition_in_the_order_listed():
    from filters.contract import columns

    schema = columns._schema(("url", "key", "width"))
    assert schema.names == ["url", "key", "width"]
    assert not schema.field("key").nullable and schema.field("width").nullable
    assert schema.field("width").type == pa.int32()
    assert all(contract.RAW_SCHEMA.field(name).equals(contract.CLEAN_SCHEMA.field(name))
               for name in contract.CLEAN_COLUMNS if name in contract.RAW_COLUMNS)
