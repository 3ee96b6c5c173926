"""Strict parser for the Prometheus text exposition format 0.0.4 (python3 stdlib only).

Lets the integration tests check that Atlas's /metrics output ("text/plain; version=0.0.4")
is well formed without needing promtool, and read values back out of it:

    families = prometheus_text.parse(body)                  # str or UTF-8 bytes
    families["atlas_requests_total"].type                   # "counter"
    prometheus_text.value(families, "atlas_requests_total", code="200")
    prometheus_text.samples(families, "atlas_request_seconds_bucket", route="/")

Any violation raises FormatError("line N: reason").  The parser is deliberately stricter
than Prometheus's own (which silently accepts e.g. interleaved families, unsorted buckets or
"0x10" as a value), because its job is to catch exposition bugs, not to be forgiving.
Where the two differ the stricter reading is taken, with one exception: timestamps may be
negative, as Go's expfmt parser allows (Prometheus's scraper accepts only digits there).
"""

import math
import re
from dataclasses import dataclass, field

__all__ = ["FormatError", "Family", "Sample", "TYPES", "parse", "value", "samples"]

TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

_BLANKS = " \t"
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Only the plain spellings clients emit; Python's float() would also take "infinity",
# "1_000", " 1", ... and Go's ParseFloat (which Prometheus uses) hex and any case.
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]?Inf")
_INT = re.compile(r"-?[0-9]+")
# "# HELP" / "# TYPE" need a blank after "#" and after the keyword (as Prometheus's lexer);
# anything else starting with "#" ("#HELP", "# HELPING") is a plain comment.
_DIRECTIVE = re.compile(r"#[ \t]+(HELP|TYPE)(?:[ \t]+|$)")
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


class FormatError(ValueError):
    """A violation of the exposition format; str() is "line N: reason" (N is 1-based)."""

    def __init__(self, line, reason):
        super().__init__("line %d: %s" % (line, reason))
        self.line = line
        self.reason = reason


@dataclass
class Sample:
    name: str
    labels: dict
    value: float
    timestamp: "int | None" = None
    # Where the sample was in the text; left out of ==/repr so tests can compare with
    # hand-built Samples.
    line: int = field(default=0, compare=False, repr=False)


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: "str | None" = None
    samples: list = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def format_labels(labels):
    """{"a": "x"} -> '{a="x"}' (re-escaped), '' for no labels; used in messages."""
    if not labels:
        return ""
    esc = lambda v: v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join('%s="%s"' % (k, esc(v)) for k, v in labels.items()) + "}"


def _parse_float(line, token, what):
    if not _FLOAT.fullmatch(token):
        raise FormatError(line, "invalid %s %r (expected a decimal float, NaN, +Inf or -Inf)"
                          % (what, token))
    v = float(token)
    # Go's ParseFloat reports overflow as an error instead of rounding to Inf.
    if math.isinf(v) and "Inf" not in token:
        raise FormatError(line, "%s %r is out of range for a float64" % (what, token))
    return v


def _skip_blanks(s, i):
    while i < len(s) and s[i] in _BLANKS:
        i += 1
    return i


def _token_end(s, i, stops):
    while i < len(s) and s[i] not in stops:
        i += 1
    return i


def _belongs(fam, name):
    """Whether a sample called `name` is part of family `fam` (given fam's type)."""
    base = fam.name
    if fam.type == "histogram":
        return name in (base + "_bucket", base + "_sum", base + "_count")
    if fam.type == "summary":
        return name in (base, base + "_sum", base + "_count")
    return name == base


def _decode(data):
    data = bytes(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(data.count(b"\n", 0, e.start) + 1, "invalid UTF-8") from None


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self):
        self.families = {}   # name -> Family, in order of first appearance
        self.first_line = {}  # name -> line the family first appeared on
        self.typed = set()    # families that had an explicit TYPE line
        self.series = {}      # (sample name, frozenset(labels)) -> line
        self.current = None   # the family whose lines we are in
        self.groups = {}      # histogram groups of `current`: label key -> state

    # ---- lines

    def line(self, no, text):
        s = text.lstrip(_BLANKS)
        if not s:
            return
        if s[0] == "#":
            m = _DIRECTIVE.match(s)
            if m:
                self.directive(no, m.group(1), s[m.end():])
            return  # any other "#" line is a comment
        self.sample_line(no, s)

    def directive(self, no, keyword, rest):
        end = _token_end(rest, 0, _BLANKS)
        name = rest[:end]
        if not name:
            raise FormatError(no, "%s line without a metric name" % keyword)
        if not _METRIC_NAME.fullmatch(name):
            raise FormatError(no, "invalid metric name %r in %s line" % (name, keyword))
        arg = rest[_skip_blanks(rest, end):]
        fam = self.family_for_metadata(no, keyword, name)
        if keyword == "HELP":
            fam.help = self.unescape_help(no, arg)
            return
        if arg not in TYPES:
            raise FormatError(no, "unknown metric type %r in TYPE line for %s (expected one of %s)"
                              % (arg, name, ", ".join(TYPES)))
        if fam.samples:
            raise FormatError(no, "TYPE line for %s must come before its first sample (line %d)"
                              % (name, fam.samples[0].line))
        self.check_sample_names_free(no, name, arg)
        fam.type = arg
        self.typed.add(name)

    def family_for_metadata(self, no, keyword, name):
        fam = self.families.get(name)
        if fam is not None:
            if keyword == "HELP" and fam.help is not None:
                raise FormatError(no, "second HELP line for %s" % name)
            if keyword == "TYPE" and name in self.typed:
                raise FormatError(no, "second TYPE line for %s" % name)
            if fam is not self.current:
                raise FormatError(no, "%s line for %s, whose family started at line %d and was "
                                  "followed by another: the lines of a family must be contiguous"
                                  % (keyword, name, self.first_line[name]))
            return fam
        owner = self.claimant(name)
        if owner is not None:
            # e.g. "# HELP foo_bucket" after "# TYPE foo histogram": ambiguous, reject.
            raise FormatError(no, "%s line for %s, a sample name of %s family %s"
                              % (keyword, name, owner.type, owner.name))
        return self.new_family(no, name)

    def check_sample_names_free(self, no, name, mtype):
        """A histogram/summary's derived sample names must not be families of their own."""
        probe = Family(name, mtype)
        for other in self.families.values():
            if other.name != name and _belongs(probe, other.name):
                raise FormatError(no, "%s %s would own samples named %s, which already form "
                                  "a family of their own (line %d)"
                                  % (mtype, name, other.name, self.first_line[other.name]))

    @staticmethod
    def unescape_help(no, text):
        out = []
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\\":
                nxt = text[i + 1:i + 2]
                if nxt == "\\":
                    out.append("\\")
                elif nxt == "n":
                    out.append("\n")
                elif not nxt:
                    raise FormatError(no, "HELP text ends in a lone backslash")
                else:
                    raise FormatError(no, "invalid escape sequence \\%s in HELP text (only "
                                      "\\\\ and \\n are allowed)" % nxt)
                i += 2
                continue
            out.append(c)
            i += 1
        return "".join(out)

    def sample_line(self, no, s):
        end = _token_end(s, 0, _BLANKS + '{"=,}')
        name = s[:end]
        if not _METRIC_NAME.fullmatch(name):
            raise FormatError(no, "invalid metric name %r" % name)
        i = _skip_blanks(s, end)
        labels = {}
        if i < len(s) and s[i] == "{":
            labels, i = self.label_set(no, s, i + 1)
            i = _skip_blanks(s, i)
        end = _token_end(s, i, _BLANKS)
        if end == i:
            raise FormatError(no, "missing value for %s%s" % (name, format_labels(labels)))
        val = _parse_float(no, s[i:end], "value")
        i = _skip_blanks(s, end)
        ts = None
        if i < len(s):
            end = _token_end(s, i, _BLANKS)
            token = s[i:end]
            if not _INT.fullmatch(token):
                raise FormatError(no, "invalid timestamp %r (expected integer milliseconds)"
                                  % token)
            ts = int(token)
            if not _INT64[0] <= ts <= _INT64[1]:
                raise FormatError(no, "timestamp %r does not fit in 64 bits" % token)
            i = _skip_blanks(s, end)
            if i < len(s):
                raise FormatError(no, "unexpected text %r after the timestamp" % s[i:])
        self.add_sample(no, Sample(name, labels, val, ts, line=no))

    def label_set(self, no, s, i):
        """Parses after "{" up to and including "}"; returns (labels, index after "}")."""
        labels = {}
        while True:
            i = _skip_blanks(s, i)
            if i < len(s) and s[i] == "}":
                return labels, i + 1  # also covers "{}" and a trailing comma
            end = _token_end(s, i, _BLANKS + '="{},')
            lname = s[i:end]
            if not lname:
                raise FormatError(no, "expected a label name or '}' at %r" % s[i:i + 10])
            if not _LABEL_NAME.fullmatch(lname):
                raise FormatError(no, "invalid label name %r" % lname)
            if lname.startswith("__"):
                raise FormatError(no, "label name %r is reserved (starts with '__')" % lname)
            if lname in labels:
                raise FormatError(no, "duplicate label name %r" % lname)
            i = _skip_blanks(s, end)
            if i >= len(s) or s[i] != "=":
                raise FormatError(no, "expected '=' after label name %r" % lname)
            i = _skip_blanks(s, i + 1)
            if i >= len(s) or s[i] != '"':
                raise FormatError(no, "label value for %r must be double-quoted" % lname)
            labels[lname], i = self.label_value(no, s, i + 1, lname)
            i = _skip_blanks(s, i)
            if i < len(s) and s[i] == ",":
                i += 1
            elif i < len(s) and s[i] == "}":
                return labels, i + 1
            else:
                raise FormatError(no, "expected ',' or '}' after the value of label %r" % lname)

    @staticmethod
    def label_value(no, s, i, lname):
        out = []
        while i < len(s):
            c = s[i]
            if c == '"':
                return "".join(out), i + 1
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt in ("\\", '"'):
                    out.append(nxt)
                elif nxt == "n":
                    out.append("\n")
                elif not nxt:
                    break  # backslash at the end of the line: unterminated value
                else:
                    raise FormatError(no, "invalid escape sequence \\%s in the value of label "
                                      "%r (only \\\\, \\\" and \\n are allowed)"
                                      % (nxt, lname))
                i += 2
                continue
            out.append(c)
            i += 1
        raise FormatError(no, "unterminated value of label %r" % lname)

    # ---- families and series

    def claimant(self, name):
        """The existing family that a sample called `name` would belong to, if any."""
        fam = self.families.get(name)
        if fam is not None and _belongs(fam, name):
            return fam
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix):
                fam = self.families.get(name[:-len(suffix)])
                if fam is not None and _belongs(fam, name):
                    return fam
        return None

    def new_family(self, no, name):
        self.close_family()
        fam = Family(name)
        self.families[name] = fam
        self.first_line[name] = no
        self.current = fam
        return fam

    def family_for_sample(self, no, name):
        if self.current is not None and _belongs(self.current, name):
            return self.current
        owner = self.claimant(name)
        if owner is not None:
            raise FormatError(no, "sample %s belongs to family %s, which started at line %d and "
                              "was followed by another: samples of a family must be contiguous"
                              % (name, owner.name, self.first_line[owner.name]))
        fam = self.families.get(name)
        if fam is not None:  # a histogram has no sample of its own bare name
            raise FormatError(no, "sample %s is not part of histogram %s (expected %s_bucket, "
                              "%s_sum or %s_count)" % (name, name, name, name, name))
        return self.new_family(no, name)  # no TYPE before it: untyped

    def add_sample(self, no, sample):
        fam = self.family_for_sample(no, sample.name)
        key = (sample.name, frozenset(sample.labels.items()))
        if key in self.series:
            raise FormatError(no, "duplicate series %s%s (first at line %d)"
                              % (sample.name, format_labels(sample.labels), self.series[key]))
        self.series[key] = no
        suffix = sample.name[len(fam.name):]
        if fam.type == "counter":
            self.check_count(no, sample, "counter")
        elif fam.type == "histogram":
            self.histogram_sample(no, fam, sample, suffix)
        elif fam.type == "summary":
            self.summary_sample(no, sample, suffix)
        fam.samples.append(sample)

    @staticmethod
    def check_count(no, sample, what):
        if math.isnan(sample.value) or sample.value < 0:
            raise FormatError(no, "%s %s%s must be a non-negative number, not %r"
                              % (what, sample.name, format_labels(sample.labels), sample.value))

    def summary_sample(self, no, sample, suffix):
        q = sample.labels.get("quantile")
        if suffix == "":
            if q is None:
                raise FormatError(no, "summary sample %s needs a quantile label" % sample.name)
            qv = _parse_float(no, q, "quantile label")
            if not 0 <= qv <= 1:
                raise FormatError(no, "quantile %r is not between 0 and 1" % q)
            return
        if q is not None:
            raise FormatError(no, "summary sample %s must not carry a quantile label"
                              % sample.name)
        if suffix == "_count":
            self.check_count(no, sample, "summary count")

    def histogram_sample(self, no, fam, sample, suffix):
        le = sample.labels.get("le")
        if suffix != "_bucket" and le is not None:
            raise FormatError(no, "histogram sample %s must not carry an le label" % sample.name)
        if suffix != "_sum":
            self.check_count(no, sample, "histogram " + suffix[1:])
        rest = {k: v for k, v in sample.labels.items() if k != "le"}
        g = self.groups.setdefault(frozenset(rest.items()), {
            "labels": rest, "buckets": [], "sum": None, "count": None, "last": no})
        g["last"] = no
        if suffix == "_sum":
            g["sum"] = sample
        elif suffix == "_count":
            g["count"] = sample
        else:
            if le is None:
                raise FormatError(no, "histogram bucket %s%s has no le label"
                                  % (sample.name, format_labels(sample.labels)))
            bound = _parse_float(no, le, "le label")
            if math.isnan(bound):
                raise FormatError(no, "le label must not be NaN")
            if g["buckets"]:
                prev_bound, prev = g["buckets"][-1]
                if bound <= prev_bound:
                    raise FormatError(no, "bucket le=\"%s\" of %s%s is not above the previous "
                                      "le=\"%s\": buckets must be in strictly increasing le order"
                                      % (le, fam.name, format_labels(rest), prev.labels["le"]))
                if sample.value < prev.value:
                    raise FormatError(no, "bucket le=\"%s\" of %s%s has count %r, below the "
                                      "previous bucket's %r: bucket counts are cumulative"
                                      % (le, fam.name, format_labels(rest), sample.value,
                                         prev.value))
            g["buckets"].append((bound, sample))

    def close_family(self):
        """Whole-series histogram checks, once all of the family's lines have been seen."""
        fam = self.current
        groups, self.groups = self.groups, {}
        if fam is None or fam.type != "histogram":
            return
        for g in groups.values():
            series = fam.name + format_labels(g["labels"])
            buckets = g["buckets"]
            if not buckets or buckets[-1][0] != math.inf:
                raise FormatError(g["last"], "histogram %s has no le=\"+Inf\" bucket" % series)
            if g["count"] is None:
                raise FormatError(g["last"], "histogram %s has no _count sample" % series)
            if g["sum"] is None:
                raise FormatError(g["last"], "histogram %s has no _sum sample" % series)
            inf = buckets[-1][1]
            if g["count"].value != inf.value:
                raise FormatError(max(g["count"].line, inf.line),
                                  "histogram %s: _count %r differs from the +Inf bucket %r"
                                  % (series, g["count"].value, inf.value))


def parse(text):
    """Parses a whole exposition (str, or bytes in UTF-8) into {family name: Family}.

    Families keep the order they appeared in, including ones with HELP/TYPE but no samples.
    Raises FormatError on the first violation found.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = _decode(text)
    lines = text.split("\n")
    tail = lines.pop()  # "" when the text ends with "\n" (or is empty)
    p = _Parser()
    for no, line in enumerate(lines, 1):
        if "\r" in line:
            raise FormatError(no, "carriage return in line (lines must end with \\n alone)")
        p.line(no, line)
    if tail:
        raise FormatError(len(lines) + 1, "text does not end with a newline")
    p.close_family()
    return p.families


# --------------------------------------------------------------------------- lookups


def samples(families, sample_name, **labels):
    """All samples called `sample_name` whose labels include the given ones, in order."""
    return [s for fam in families.values() for s in fam.samples
            if s.name == sample_name
            and all(k in s.labels and s.labels[k] == v for k, v in labels.items())]


def value(families, sample_name, **labels):
    """The value of the one sample called `sample_name` with exactly these labels.

    KeyError if there is none (the message lists the label sets there are), AssertionError
    if there are several.  Label values are compared as strings: le="+Inf", not le=math.inf.
    """
    candidates = samples(families, sample_name)
    found = [s for s in candidates if s.labels == labels]
    if not found:
        have = ", ".join(format_labels(s.labels) or "{}" for s in candidates[:10]) or "none"
        raise KeyError("no sample %s%s (label sets of %s: %s)"
                       % (sample_name, format_labels(labels) or "{}", sample_name, have))
    if len(found) > 1:
        raise AssertionError("%d samples %s%s" % (len(found), sample_name, format_labels(labels)))
    return found[0].value
