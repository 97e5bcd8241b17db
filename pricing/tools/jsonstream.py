"""Read very large JSON documents member by member, Python 3 stdlib only.

The AWS Price List offer file for one region is a single JSON object of
several hundred MB ({"products": {sku: ...}, "terms": {"OnDemand": {sku:
...}, "Reserved": {...}}}); json.load() of it needs several GB. This module
walks the outer objects itself and hands each inner record (one product,
one SKU's terms) to json.JSONDecoder.raw_decode, the C decoder, so memory
stays at one read chunk plus one record whatever the file size.

    s = JSONStream(f, "offer.json")
    s.begin_object()
    for key in s.members():            # top-level keys, in file order
        if key == "products":
            s.begin_object()
            for sku in s.members():
                product = s.read_value()
        # a member whose value is not consumed is skipped

Errors are JSONStreamError("file:line:column: message"): truncated input,
a syntax error, text after the document, or a single value larger than
max_value_chars (a hostile or broken file must not take all memory).
"""

import json

WHITESPACE = " \t\n\r"


class JSONStreamError(ValueError):
    """Malformed or truncated JSON, with the position of the problem."""

    def __init__(self, name, line, column, message):
        self.name, self.line, self.column, self.message = name, line, column, message
        super().__init__(f"{name}:{line}:{column}: {message}")


class JSONStream:
    """A cursor over a JSON text read from a file object in chunks."""

    def __init__(self, f, name, chunk_chars=1 << 20, max_value_chars=64 << 20):
        self.f = f
        self.name = name
        self.chunk = chunk_chars
        self.max_value = max_value_chars
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.eof = False
        # Position bookkeeping for the text already dropped from buf.
        self.dropped = 0          # characters
        self.dropped_lines = 0    # newlines among them
        self.dropped_col = 0      # characters after the last of those newlines

    # ------------------------------------------------------------ input --

    def _fill(self, at_least=0):
        """Read one more chunk, or at_least characters (dropping what is
        consumed); False at EOF."""
        if self.eof:
            return False
        data = self.f.read(max(self.chunk, at_least))
        if not data:
            self.eof = True
            return False
        # Positions move only when data was added: callers retry then.
        if self.pos:
            consumed = self.buf[:self.pos]
            nl = consumed.count("\n")
            if nl:
                self.dropped_lines += nl
                self.dropped_col = len(consumed) - consumed.rfind("\n") - 1
            else:
                self.dropped_col += len(consumed)
            self.dropped += self.pos
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += data
        return True

    def _skip_ws(self):
        while True:
            n = len(self.buf)
            while self.pos < n and self.buf[self.pos] in WHITESPACE:
                self.pos += 1
            if self.pos < n or not self._fill():
                return

    def _peek(self):
        self._skip_ws()
        return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def offset(self):
        """Characters consumed so far (for progress and loop detection)."""
        return self.dropped + self.pos

    def where(self, pos=None):
        """(line, column), 1-based, of buffer position pos (default: cursor)."""
        pos = self.pos if pos is None else pos
        head = self.buf[:pos]
        nl = head.count("\n")
        if nl:
            return self.dropped_lines + nl + 1, pos - head.rfind("\n")
        return self.dropped_lines + 1, self.dropped_col + pos + 1

    def error(self, message, pos=None):
        line, col = self.where(pos)
        return JSONStreamError(self.name, line, col, message)

    def _unexpected(self, wanted):
        c = self._peek()
        if not c:
            return self.error(f"truncated: the file ends where {wanted} was expected")
        return self.error(f"expected {wanted}, found {c!r}")

    # ----------------------------------------------------------- values --

    def read_value(self):
        """Decode the complete JSON value at the cursor and move past it."""
        self._skip_ws()
        while True:
            if len(self.buf) - self.pos > self.max_value:
                raise self.error(f"a single JSON value is larger than "
                                 f"{self.max_value >> 20} MiB; refusing to read it")
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                # Ran off the end of what is buffered: read on and retry.
                # An error well inside the buffer is a real one.
                incomplete = (e.pos >= len(self.buf) - 8
                              or e.msg.startswith("Unterminated string"))
                # Double what is buffered each time: a value spanning many
                # chunks is decoded O(log n) times, not once per chunk.
                if incomplete and self._fill(len(self.buf) - self.pos):
                    continue
                if incomplete:
                    raise self.error("truncated: the file ends inside a value "
                                     "(incomplete download?)", self.pos) from None
                raise self.error(e.msg, e.pos) from None
            # A number may go on in the next chunk ("12" of "12.5e3": the
            # decoder stops before a '.', 'e' or '-' with nothing after it).
            if end + 2 >= len(self.buf) and self._fill(len(self.buf) - self.pos):
                continue
            self.pos = end
            return value

    def skip_value(self):
        """Move past the value at the cursor without holding it whole: an
        object or array is walked one level down and its members decoded
        one at a time (the unread 'Reserved' terms of an offer file are
        most of the file)."""
        c = self._peek()
        if c == "{":
            self.pos += 1
            for _ in self.members():
                self.read_value()
        elif c == "[":
            self.pos += 1
            for _ in self.items():
                pass
        else:
            self.read_value()

    # ---------------------------------------------------------- objects --

    def begin_object(self):
        if self._peek() != "{":
            raise self._unexpected("'{' (a JSON object)")
        self.pos += 1

    def begin_array(self):
        if self._peek() != "[":
            raise self._unexpected("'[' (a JSON array)")
        self.pos += 1

    def _key(self):
        if self._peek() != '"':
            raise self._unexpected("a member name in double quotes")
        while True:
            try:
                key, end = json.decoder.scanstring(self.buf, self.pos + 1)
                break
            except json.JSONDecodeError as e:
                if self._fill():
                    continue
                raise self.error("truncated: the file ends inside a member name"
                                 if e.msg.startswith("Unterminated") else e.msg) from None
        self.pos = end
        if self._peek() != ":":
            raise self._unexpected(f"':' after member name {key!r}")
        self.pos += 1
        return key

    def members(self):
        """Yield the member names of the object just begun, in order; the
        caller reads (or descends into) each value, or leaves it: values
        not consumed are skipped."""
        if self._peek() == "}":
            self.pos += 1
            return
        while True:
            key = self._key()
            self._skip_ws()
            before = self.offset()
            yield key
            if self.offset() == before:
                self.skip_value()
            c = self._peek()
            if c == ",":
                self.pos += 1
                continue
            if c == "}":
                self.pos += 1
                return
            raise self._unexpected(f"',' or '}}' after the value of {key!r}")

    def items(self):
        """Yield the elements of the array just begun, each decoded."""
        if self._peek() == "]":
            self.pos += 1
            return
        while True:
            yield self.read_value()
            c = self._peek()
            if c == ",":
                self.pos += 1
                continue
            if c == "]":
                self.pos += 1
                return
            raise self._unexpected("',' or ']' between array elements")

    def end(self):
        """After the top-level value: nothing but whitespace may follow."""
        c = self._peek()
        if c:
            raise self.error(f"unexpected {c!r} after the end of the JSON document")


def open_json(path, chunk_chars=1 << 20, max_value_chars=64 << 20):
    """(file, JSONStream) for path; the caller closes the file."""
    f = open(path, encoding="utf-8")
    return f, JSONStream(f, path, chunk_chars, max_value_chars)
