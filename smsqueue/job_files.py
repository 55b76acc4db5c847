"""A job's CSV file: its header read and checked, the file spooled into `job_chunks` as it arrives, and
read back as a stream of records. Neither the web nor a worker ever holds the whole file.

The standard library's csv module parses (quoted fields, quoted newlines, doubled quotes); the
separator is decided on the header row: `;` when splitting the header on it finds the `to` column and
splitting on `,` does not, else `,`.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import Connection, insert, select

from smsqueue.db import transaction
from smsqueue.models import JobChunk

chunks_t = JobChunk.__table__
CHUNK = 1024 * 1024  # bytes per spooled piece
MAX_HEADER = 64 * 1024  # a header row longer than this is not a header
MAX_FILE = 256 * 1024 * 1024
MAX_FIELD = 64 * 1024  # one cell; the csv module's own default is 128 KiB
INVALID_CSV = "invalid_csv"
DELIMITERS = (",", ";")

csv.field_size_limit(MAX_FIELD)


class CsvProblem(ValueError):
    """The file cannot be a job (422 invalid_csv); the message says why."""


class TooLarge(ValueError):
    """The file is over MAX_FILE."""


@dataclass(frozen=True, slots=True)
class Header:
    columns: list[str]
    delimiter: str
    first: bytes  # what was read of the file to find the header (spooled first)


def read_header(stream: IO[bytes]) -> Header:
    """Read up to the end of the header row (and a little more) and check it."""
    buffer = b""
    while b"\n" not in buffer and len(buffer) < MAX_HEADER:
        piece = stream.read(min(CHUNK, MAX_HEADER))
        if not piece:
            break
        buffer += piece
    if not buffer.strip(b"\xef\xbb\xbf \t\r\n"):
        raise CsvProblem("the file is empty")
    end = buffer.find(b"\n")
    if end < 0:
        if len(buffer) >= MAX_HEADER:
            raise CsvProblem(f"no header row within the first {MAX_HEADER // 1024} KiB")
        end = len(buffer)
    raw = buffer[:end]
    try:
        line = codecs.decode(raw, "utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        raise CsvProblem("the file is not UTF-8 text") from None
    if "\x00" in line:
        raise CsvProblem("the file holds NUL characters: it is not a text CSV file")
    delimiter = choose_delimiter(line)
    columns = [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
    if len(set(columns)) != len(columns):
        twice = sorted({c for c in columns if columns.count(c) > 1})
        raise CsvProblem(f"the header names a column twice: {', '.join(twice)}")
    return Header(columns, delimiter, buffer)


def choose_delimiter(line: str) -> str:
    split = {d: [c.strip() for c in next(csv.reader([line], delimiter=d), [])] for d in DELIMITERS}
    if "to" in split[";"] and "to" not in split[","]:
        return ";"
    return ","


def spool(conn: Connection, job_pk: int, header: Header, stream: IO[bytes]) -> int:
    """Store the whole file in pieces, in the caller's transaction, checking as it goes that it is UTF-8
    without NUL characters (so a worker never finds out later). The file's size."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = header.first
    size = 0
    seq = 0
    rest_blank = True  # nothing but the header so far
    header_end = header.first.find(b"\n")
    while True:
        while len(pending) < CHUNK:
            piece = stream.read(CHUNK)
            if not piece:
                break
            pending += piece
        if not pending:
            break
        data, pending = pending[:CHUNK], pending[CHUNK:]
        size += len(data)
        if size > MAX_FILE:
            raise TooLarge()
        try:
            decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise CsvProblem(
                f"the file is not UTF-8 text (at byte {size - len(data) + exc.start + 1})"
            ) from None
        if b"\x00" in data:
            raise CsvProblem("the file holds NUL characters: it is not a text CSV file")
        if rest_blank:
            body = data[header_end + 1 :] if seq == 0 and header_end >= 0 else data if seq else b""
            rest_blank = not body.strip()
        conn.execute(insert(chunks_t).values(job_pk=job_pk, seq=seq, data=data))
        seq += 1
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise CsvProblem("the file is not UTF-8 text (it ends inside a character)") from None
    if rest_blank:
        raise CsvProblem("the file has a header row but no rows")
    return size


class ChunkReader(io.RawIOBase):
    """The spooled file as a byte stream: one piece read from the database at a time."""

    def __init__(self, job_pk: int) -> None:
        self.job_pk = job_pk
        self.seq = 0
        self.buffer = b""
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self.buffer and not self.done:
            with transaction() as conn:
                data = conn.execute(
                    select(chunks_t.c.data).where(
                        chunks_t.c.job_pk == self.job_pk, chunks_t.c.seq == self.seq
                    )
                ).scalar()
            if data is None:
                self.done = True
            else:
                self.buffer = bytes(data)
                self.seq += 1
        n = min(len(target), len(self.buffer))
        target[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n


def records(job_pk: int, delimiter: str) -> Iterator[list[str]]:
    """The file's records after the header, in order (a blank line is an empty record)."""
    text = io.TextIOWrapper(io.BufferedReader(ChunkReader(job_pk), CHUNK), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=False)
    next(reader, None)
    yield from reader
