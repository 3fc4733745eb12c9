"""Column types through clickhouse-driver: what goes in comes out, the same through the proxy as directly.

ClickHouse 18.16 has no IPv4/IPv6 types (added in 19.x) and needs
allow_experimental_low_cardinality_type=1 for LowCardinality.
"""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest

from support.driver import connect

LC = {"allow_experimental_low_cardinality_type": 1}

# name, type, three values to insert
COLUMNS = [
    ("i8", "Int8", [-128, 0, 127]),
    ("i16", "Int16", [-32768, 1, 32767]),
    ("i32", "Int32", [-(2**31), 2, 2**31 - 1]),
    ("i64", "Int64", [-(2**63), 3, 2**63 - 1]),
    ("u8", "UInt8", [0, 1, 255]),
    ("u16", "UInt16", [0, 2, 65535]),
    ("u32", "UInt32", [0, 3, 2**32 - 1]),
    ("u64", "UInt64", [0, 4, 2**64 - 1]),
    ("f32", "Float32", [0.5, -1.25, 3.0e10]),
    ("f64", "Float64", [math.pi, -0.0, 1e300]),
    ("d9", "Decimal(9, 2)", [Decimal("1234567.89"), Decimal("-0.01"), Decimal("0.00")]),
    ("d18", "Decimal(18, 4)", [Decimal("12345678901234.5678"), Decimal("-1.0001"), Decimal("0.0000")]),
    ("d38", "Decimal(38, 10)", [Decimal("1234567890123456789012345678.0123456789"), Decimal("-0.0000000001"), Decimal("0E-10")]),
    ("s", "String", ["", "héllo wörld ✓", "tab\tnew\nline 'q' \\"]),
    ("fs", "FixedString(4)", ["abcd", "ab", ""]),
    ("d", "Date", [date(1970, 1, 1), date(2024, 2, 29), date(2100, 12, 31)]),
    ("dt", "DateTime", [datetime(1970, 1, 2, 0, 0, 0), datetime(2024, 2, 29, 23, 59, 59), datetime(2100, 1, 1, 12, 0, 0)]),
    ("dtb", "DateTime('Europe/Berlin')", [datetime(2024, 3, 31, 1, 30, 0), datetime(2024, 10, 27, 3, 30, 0), datetime(2000, 1, 1)]),
    ("uid", "UUID", [uuid.UUID(int=0), uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.UUID(int=2**128 - 1)]),
    ("e8", "Enum8('a' = 1, 'b' = -2, 'c' = 127)", ["a", "b", "c"]),
    ("e16", "Enum16('x' = 1000, 'y' = -1000)", ["x", "y", "x"]),
    ("n32", "Nullable(Int32)", [None, 5, -5]),
    ("ns", "Nullable(String)", ["x", None, ""]),
    ("a32", "Array(UInt32)", [[], [1, 2, 3], [4294967295]]),
    ("aas", "Array(Array(Nullable(String)))", [[[]], [["a", None], ["b"]], []]),
    ("ad", "Array(Date)", [[date(2020, 1, 1)], [], [date(2021, 1, 1), date(2022, 1, 1)]]),
    ("t", "Tuple(UInt8, String, Array(Int16))", [(1, "x", [1, -1]), (2, "", []), (255, "z", [32767])]),
    ("lc", "LowCardinality(String)", ["red", "green", "red"]),
    ("lcn", "LowCardinality(Nullable(String))", ["red", None, "blue"]),
]


def normalise(value):
    """Values as a user compares them: aware datetimes as naive, FixedString without its zero padding."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    if isinstance(value, float) and value == 0.0:
        return 0.0
    return value


def create_and_fill(endpoint, db, table):
    client = connect(endpoint, settings=LC)
    columns = ", ".join(f"{name} {ctype}" for name, ctype, _ in COLUMNS)
    client.execute(f"CREATE TABLE {db}.{table} (row UInt8, {columns}) ENGINE = MergeTree ORDER BY row")
    rows = [tuple([i] + [values[i] for _, _, values in COLUMNS]) for i in range(3)]
    client.execute(f"INSERT INTO {db}.{table} VALUES", rows)
    client.disconnect()
    return rows


def read_back(endpoint, db, table):
    client = connect(endpoint, settings=LC)
    result = client.execute(f"SELECT * FROM {db}.{table} ORDER BY row", with_column_types=True)
    client.disconnect()
    return result


def test_types_round_trip(proxy, direct, db):
    create_and_fill(proxy, db, "via_proxy")
    create_and_fill(direct, db, "via_direct")

    rows_p, types_p = read_back(proxy, db, "via_proxy")
    rows_d, types_d = read_back(direct, db, "via_direct")
    assert types_p == types_d
    assert rows_p == rows_d

    # Reading the direct table through the proxy gives the same too.
    cross, _ = read_back(proxy, db, "via_direct")
    assert cross == rows_d

    # And it is what was inserted (types as ClickHouse names them, values as Python sees them).
    types = dict(types_p)
    assert types["d38"] == "Decimal(38, 10)"
    assert types["lcn"] == "LowCardinality(Nullable(String))"
    assert types["e8"] == "Enum8('b' = -2, 'a' = 1, 'c' = 127)"  # the server orders Enum values
    for (name, _, values), column in zip(COLUMNS, list(zip(*rows_p))[1:]):
        if name == "f32":
            assert list(column) == pytest.approx(values, rel=1e-6)
        elif name == "fs":
            assert list(column) == ["abcd", "ab", ""]
        else:
            assert [normalise(v) for v in column] == [normalise(v) for v in values], name


@pytest.mark.parametrize(
    "expr",
    [
        "toInt8(-1), toUInt64(18446744073709551615), toFloat32(0.1), toFloat64(1) / 0, -toFloat64(1) / 0",
        "toDecimal32(3.14, 2), toDecimal64(-2.5, 3), toDecimal128(1, 20)",
        "toDate('2019-01-01'), toDateTime('2019-01-01 12:34:56', 'Asia/Kolkata'), toDateTime(0)",
        "generateUUIDv4() = generateUUIDv4(), toUUID('00000000-0000-0000-0000-000000000001')",
        "[[1, 2], [], [3]], [NULL, 1], ['a', NULL], tuple(1, 'a', [NULL])",
        "CAST('b' AS Enum8('a' = 1, 'b' = 2)), toFixedString('ab', 5), CAST(NULL AS Nullable(Date))",
        "toLowCardinality('x'), arrayMap(x -> toString(x), range(5)), emptyArrayString()",
    ],
)
def test_expressions(proxy, direct, expr):
    q = f"SELECT {expr} FROM numbers(3)"
    a = connect(proxy, settings=LC).execute(q, with_column_types=True)
    b = connect(direct, settings=LC).execute(q, with_column_types=True)
    assert a == b
