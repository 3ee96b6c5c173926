"""The strict Prometheus text-format parser (prometheus_text.py) that the /metrics tests use:
it must accept real-world expositions and reject every rule violation with the right line.
Needs no atlasd."""

import math
import unittest

from prometheus_text import FormatError, Family, Sample, parse, samples, value

# A realistic exposition: Go-client style runtime metrics, an Atlas-like counter with
# escapes in HELP and label values, a labelled histogram, NaN/Inf values, timestamps, a
# trailing comma, tabs, blank and comment lines, and an untyped sample with no TYPE.
REALISTIC = r"""# Atlas edge server metrics
# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25"} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5"} 8.3835e-05
go_gc_duration_seconds{quantile="1"} 0.002072195
go_gc_duration_seconds_sum 0.012139815
go_gc_duration_seconds_count 99
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33

# HELP atlas_requests_total Requests served.\nCounted when the response is sent; path is "raw" C:\\www.
# TYPE atlas_requests_total counter
atlas_requests_total{listener="main",code="200"} 1027 1700000000000
atlas_requests_total{listener="main",code="404",} 3 1700000000000
atlas_requests_total{listener="quote \"q\" back\\slash\nnewline",code="500"} 0
# HELP atlas_request_duration_seconds Time from first request byte to last response byte.
# TYPE atlas_request_duration_seconds histogram
atlas_request_duration_seconds_bucket{route="/",le="0.005"} 24054
atlas_request_duration_seconds_bucket{route="/",le="0.01"} 33444
atlas_request_duration_seconds_bucket{route="/",le="0.1"} 100392
atlas_request_duration_seconds_bucket{route="/",le="1"} 129389
atlas_request_duration_seconds_bucket{route="/",le="+Inf"} 144320
atlas_request_duration_seconds_sum{route="/"} 53423.5
atlas_request_duration_seconds_count{route="/"} 144320
atlas_request_duration_seconds_bucket{route="/api",le="0.005"} 0
atlas_request_duration_seconds_bucket{route="/api",le="0.01"} 0
atlas_request_duration_seconds_bucket{route="/api",le="0.1"} 2
atlas_request_duration_seconds_bucket{route="/api",le="1"} 2
atlas_request_duration_seconds_bucket{route="/api",le="+Inf"} 2
atlas_request_duration_seconds_count{route="/api"} 2
atlas_request_duration_seconds_sum{route="/api"} 0.0625
# HELP atlas_upstream_weight Current weight; NaN while unknown.
# TYPE atlas_upstream_weight gauge
atlas_upstream_weight{upstream="a"} NaN
atlas_upstream_weight{upstream="b"} +Inf
atlas_upstream_weight{upstream="c"} -Inf
atlas_upstream_weight{upstream="d"} -1.5e-3 -42
	atlas_upstream_weight { upstream = "e" }	Inf	
# TYPE atlas_build_info untyped
atlas_build_info{version="1.2.3"} 1
legacy_metric_without_type 12.5
"""


class Accepts(unittest.TestCase):
    def test_empty_text(self):
        self.assertEqual(parse(""), {})

    def test_blank_and_comment_lines_only(self):
        self.assertEqual(parse("\n   \n# just a comment\n#HELP not metadata\n\t\n"), {})

    def test_realistic_exposition(self):
        f = parse(REALISTIC)
        self.assertEqual(list(f), [
            "go_gc_duration_seconds", "go_goroutines", "atlas_requests_total",
            "atlas_request_duration_seconds", "atlas_upstream_weight", "atlas_build_info",
            "legacy_metric_without_type"])
        self.assertEqual([fam.type for fam in f.values()], [
            "summary", "gauge", "counter", "histogram", "gauge", "untyped", "untyped"])

        self.assertEqual(f["atlas_requests_total"].help,
                         'Requests served.\nCounted when the response is sent; '
                         'path is "raw" C:\\www.')
        self.assertIsNone(f["legacy_metric_without_type"].help)

        reqs = f["atlas_requests_total"].samples
        self.assertEqual(reqs[0], Sample("atlas_requests_total",
                                         {"listener": "main", "code": "200"}, 1027.0,
                                         1700000000000))
        self.assertEqual(reqs[1].labels, {"listener": "main", "code": "404"})  # trailing ","
        self.assertEqual(reqs[2].labels["listener"], 'quote "q" back\\slash\nnewline')
        self.assertIsNone(reqs[2].timestamp)
        self.assertEqual(reqs[2].line, 18)

        self.assertEqual(value(f, "go_gc_duration_seconds", quantile="0.5"), 8.3835e-05)
        self.assertEqual(value(f, "go_gc_duration_seconds_count"), 99)
        self.assertEqual(value(f, "atlas_request_duration_seconds_bucket",
                               route="/api", le="+Inf"), 2)
        self.assertEqual(value(f, "atlas_request_duration_seconds_sum", route="/"), 53423.5)
        self.assertEqual(len(samples(f, "atlas_request_duration_seconds_bucket", route="/")), 5)

        self.assertTrue(math.isnan(value(f, "atlas_upstream_weight", upstream="a")))
        self.assertEqual(value(f, "atlas_upstream_weight", upstream="b"), math.inf)
        self.assertEqual(value(f, "atlas_upstream_weight", upstream="c"), -math.inf)
        self.assertEqual(value(f, "atlas_upstream_weight", upstream="e"), math.inf)  # tabs
        d = samples(f, "atlas_upstream_weight", upstream="d")[0]
        self.assertEqual((d.value, d.timestamp), (-0.0015, -42))
        self.assertEqual(value(f, "legacy_metric_without_type"), 12.5)

    def test_bytes_input(self):
        f = parse("# HELP m Grüße\nm{city=\"Zürich\"} 1\n".encode("utf-8"))
        self.assertEqual(f["m"].help, "Grüße")
        self.assertEqual(value(f, "m", city="Zürich"), 1)

    def test_value_spellings(self):
        for token, expected in [("0", 0.0), ("-0", 0.0), ("42", 42.0), ("+3", 3.0),
                                ("1.", 1.0), (".5", 0.5), ("1.5e3", 1500.0), ("2E-2", 0.02),
                                ("1e+06", 1e6), ("007", 7.0), ("Inf", math.inf),
                                ("+Inf", math.inf), ("-Inf", -math.inf)]:
            with self.subTest(token=token):
                self.assertEqual(value(parse("g %s\n" % token), "g"), expected)
        self.assertTrue(math.isnan(value(parse("g NaN\n"), "g")))

    def test_empty_label_set_and_help(self):
        f = parse("# HELP m\n# TYPE m gauge\nm{} 1\n")
        self.assertEqual(f["m"].help, "")
        self.assertEqual(f["m"].samples[0].labels, {})

    def test_family_with_metadata_but_no_samples(self):
        f = parse("# HELP h Nothing observed yet.\n# TYPE h histogram\n# TYPE c counter\nc 0\n")
        self.assertEqual(f["h"], Family("h", "histogram", "Nothing observed yet.", []))
        self.assertEqual(f["c"].samples, [Sample("c", {}, 0.0)])

    def test_counter_named_with_total_suffix(self):
        f = parse("# TYPE x_total counter\nx_total 5\n")
        self.assertEqual((f["x_total"].type, value(f, "x_total")), ("counter", 5))

    def test_summary_without_quantiles(self):
        f = parse("# TYPE s summary\ns_sum 1.5\ns_count 3\n")
        self.assertEqual(value(f, "s_count"), 3)

    def test_sum_and_gauge_may_be_negative(self):
        f = parse("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum -2.5\nh_count 1\n"
                  "# TYPE g gauge\ng -1\n")
        self.assertEqual((value(f, "h_sum"), value(f, "g")), (-2.5, -1))

    def test_histogram_with_only_inf_bucket(self):
        f = parse("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n")
        self.assertEqual(len(f["h"].samples), 3)

    def test_series_differing_in_label_values(self):
        f = parse('m{a="1",b="2"} 1\nm{a="2",b="1"} 2\n')
        self.assertEqual(len(f["m"].samples), 2)


class Lookups(unittest.TestCase):
    F = parse('m{a="1"} 1\nm{a="1",b="2"} 2\nm 3\n')

    def test_value_needs_exact_labels(self):
        self.assertEqual(value(self.F, "m", a="1"), 1)
        self.assertEqual(value(self.F, "m", a="1", b="2"), 2)
        self.assertEqual(value(self.F, "m"), 3)

    def test_value_missing_is_key_error(self):
        with self.assertRaises(KeyError) as cm:
            value(self.F, "m", a="2")
        self.assertIn('{a="1",b="2"}', str(cm.exception))  # lists what there is
        with self.assertRaises(KeyError):
            value(self.F, "nope")

    def test_value_ambiguous_is_assertion_error(self):
        twice = {"m": Family("m", "gauge", None, [Sample("m", {}, 1.0), Sample("m", {}, 2.0)])}
        with self.assertRaises(AssertionError):
            value(twice, "m")

    def test_samples_matches_label_subset(self):
        self.assertEqual([s.value for s in samples(self.F, "m", a="1")], [1, 2])
        self.assertEqual([s.value for s in samples(self.F, "m")], [1, 2, 3])
        self.assertEqual(samples(self.F, "m", b="3"), [])


class Rejects(unittest.TestCase):
    def assertRejects(self, text, line, *fragments):
        with self.assertRaises(FormatError) as cm:
            parse(text)
        e = cm.exception
        msg = str(e)
        self.assertEqual(e.line, line, msg)
        self.assertTrue(msg.startswith("line %d: " % line), msg)
        for fragment in fragments:
            self.assertIn(fragment, msg)
        return msg

    # ---- lines

    def test_missing_final_newline(self):
        self.assertRejects("a 1\nb 2", 2, "newline")

    def test_missing_final_newline_on_comment(self):
        self.assertRejects("a 1\n# done", 2, "newline")

    def test_carriage_return(self):
        self.assertRejects("a 1\nb 2\r\n", 2, "carriage return")

    def test_invalid_utf8(self):
        self.assertRejects(b"a 1\nb{x=\"\xff\"} 2\n", 2, "UTF-8")

    def test_line_numbers_count_blank_and_comment_lines(self):
        self.assertRejects("\n# c\n\na 1\n\nb x\n", 6, "invalid value")

    # ---- HELP / TYPE

    def test_help_invalid_escape(self):
        self.assertRejects("# HELP a one\\ttwo\na 1\n", 1, "escape", "\\t")

    def test_help_trailing_backslash(self):
        self.assertRejects("a 1\n# HELP b dangling\\\n", 2, "lone backslash")

    def test_help_without_name(self):
        self.assertRejects("# HELP \n", 1, "without a metric name")

    def test_help_invalid_name(self):
        self.assertRejects("# HELP 1a help\n", 1, "invalid metric name", "'1a'")

    def test_type_invalid_name(self):
        self.assertRejects("# TYPE a-b counter\n", 1, "invalid metric name", "'a-b'")

    def test_type_unknown(self):
        self.assertRejects("# TYPE a timer\n", 1, "unknown metric type 'timer'")

    def test_type_is_case_sensitive(self):
        self.assertRejects("# TYPE a Counter\n", 1, "unknown metric type 'Counter'")

    def test_type_missing(self):
        self.assertRejects("# TYPE a\n", 1, "unknown metric type ''")

    def test_type_trailing_text(self):
        self.assertRejects("# TYPE a counter extra\n", 1, "unknown metric type")

    def test_second_help(self):
        self.assertRejects("# HELP a x\n# HELP a y\na 1\n", 2, "second HELP")

    def test_second_type(self):
        self.assertRejects("# TYPE a gauge\n# TYPE a gauge\na 1\n", 2, "second TYPE")

    def test_second_type_after_samples(self):
        self.assertRejects("# TYPE a gauge\na 1\n# TYPE a gauge\n", 3, "second TYPE")

    def test_type_after_first_sample(self):
        self.assertRejects("# HELP a x\na 1\n# TYPE a gauge\n", 3,
                           "must come before its first sample (line 2)")

    def test_metadata_for_earlier_family(self):
        self.assertRejects("a 1\nb 1\n# HELP a late\n", 3, "contiguous")

    def test_metadata_name_that_is_a_histogram_sample(self):
        self.assertRejects("# TYPE h histogram\n# HELP h_bucket x\n", 2,
                           "sample name of histogram family h")

    def test_histogram_type_over_existing_family(self):
        self.assertRejects("h_sum 1\n# TYPE h histogram\n", 2, "h_sum", "family of their own")

    # ---- names and labels

    def test_invalid_metric_name(self):
        self.assertRejects("a 1\n0abc 1\n", 2, "invalid metric name '0abc'")

    def test_invalid_metric_name_character(self):
        self.assertRejects("a.b 1\n", 1, "invalid metric name 'a.b'")

    def test_missing_metric_name(self):
        self.assertRejects('{a="b"} 1\n', 1, "invalid metric name ''")

    def test_invalid_label_name(self):
        self.assertRejects('m{a-b="x"} 1\n', 1, "invalid label name 'a-b'")

    def test_label_name_starting_with_digit(self):
        self.assertRejects('m{1a="x"} 1\n', 1, "invalid label name '1a'")

    def test_label_name_colon(self):
        self.assertRejects('m{a:b="x"} 1\n', 1, "invalid label name 'a:b'")

    def test_reserved_label_name(self):
        self.assertRejects('m{__name__="x"} 1\n', 1, "reserved")

    def test_duplicate_label_name(self):
        self.assertRejects('m{a="1",b="2",a="3"} 1\n', 1, "duplicate label name 'a'")

    def test_unquoted_label_value(self):
        self.assertRejects("m{a=x} 1\n", 1, "double-quoted")

    def test_single_quoted_label_value(self):
        self.assertRejects("m{a='x'} 1\n", 1, "double-quoted")

    def test_unterminated_label_value(self):
        self.assertRejects('a 1\nm{a="x} 1\n', 2, "unterminated")

    def test_invalid_label_escape(self):
        self.assertRejects('m{a="x\\ty"} 1\n', 1, "escape", "\\t")

    def test_label_value_ending_in_backslash(self):
        self.assertRejects('m{a="x\\\n', 1, "unterminated")

    def test_unicode_escape_is_not_allowed(self):
        self.assertRejects('m{a="\\u00e9"} 1\n', 1, "escape")

    def test_missing_equals(self):
        self.assertRejects('m{a "x"} 1\n', 1, "expected '='")

    def test_missing_comma(self):
        self.assertRejects('m{a="x" b="y"} 1\n', 1, "expected ',' or '}'")

    def test_missing_closing_brace(self):
        self.assertRejects('m{a="x" 1\n', 1, "expected ',' or '}'")

    def test_lone_comma(self):
        self.assertRejects("m{,} 1\n", 1, "expected a label name")

    def test_double_comma(self):
        self.assertRejects('m{a="x",,} 1\n', 1, "expected a label name")

    # ---- values and timestamps

    def test_missing_value(self):
        self.assertRejects("m\n", 1, "missing value")

    def test_missing_value_after_labels(self):
        self.assertRejects('a 1\nm{a="b"}\n', 2, "missing value")

    def test_values_python_or_go_would_take(self):
        for token in ["infinity", "Infinity", "inf", "+inf", "nan", "NAN", "+NaN", "-NaN",
                      "1_000", "0x10", "0x1p-2", "1e", "e5", ".", "--1", "1.2.3", "1,5",
                      "١", "½", "1e999"]:
            with self.subTest(token=token):
                self.assertRejects("a 1\nm %s\n" % token, 2, repr(token))

    def test_float_timestamp(self):
        self.assertRejects("m 1 1.5\n", 1, "invalid timestamp '1.5'")

    def test_exponent_timestamp(self):
        self.assertRejects("m 1 1e3\n", 1, "invalid timestamp")

    def test_timestamp_out_of_range(self):
        self.assertRejects("m 1 9223372036854775808\n", 1, "64 bits")

    def test_text_after_timestamp(self):
        self.assertRejects("m 1 2 3\n", 1, "after the timestamp")

    # ---- families and series

    def test_samples_of_a_family_must_be_contiguous(self):
        self.assertRejects('a{x="1"} 1\nb 1\na{x="2"} 2\n', 3, "contiguous")

    def test_histogram_samples_must_be_contiguous(self):
        self.assertRejects('# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'
                           'g 1\nh_count{route="/"} 1\n', 6, "contiguous", "family h")

    def test_summary_samples_must_be_contiguous(self):
        self.assertRejects("# TYPE s summary\ns_count 1\ng 1\ns_sum 1\n", 4, "contiguous")

    def test_counter_sample_name_must_match_family(self):
        # Without the _total in the TYPE name, x_total is a family of its own...
        f = parse("# TYPE x counter\nx_total 1\n")
        self.assertEqual((f["x"].samples, f["x_total"].type), ([], "untyped"))
        # ...so a later x sample is cut off from its family.
        self.assertRejects("# TYPE x counter\nx_total 1\nx 1\n", 3, "contiguous")

    def test_bare_name_in_histogram(self):
        self.assertRejects("# TYPE h histogram\nh 1\n", 2, "not part of histogram h")

    def test_duplicate_series(self):
        self.assertRejects('m{a="1"} 1\nm{a="2"} 1\nm{a="1"} 2\n', 3,
                           'duplicate series m{a="1"} (first at line 1)')

    def test_duplicate_series_labels_reordered(self):
        self.assertRejects('m{a="1",b="2"} 1\nm{b="2",a="1"} 1\n', 2, "duplicate series")

    def test_duplicate_series_without_labels(self):
        self.assertRejects("m 1\nm{} 2\n", 2, "duplicate series m (first at line 1)")

    def test_duplicate_series_differing_only_in_timestamp(self):
        self.assertRejects("m 1 1000\nm 1 2000\n", 2, "duplicate series")

    # ---- counters

    def test_negative_counter(self):
        self.assertRejects("# TYPE c counter\nc 1\n# TYPE d counter\nd -1\n", 4, "non-negative")

    def test_nan_counter(self):
        self.assertRejects("# TYPE c counter\nc NaN\n", 2, "non-negative")

    # ---- histograms

    H = "# TYPE h histogram\n"

    def test_bucket_without_le(self):
        self.assertRejects(self.H + 'h_bucket{a="x"} 1\n', 2, "no le label")

    def test_le_not_a_float(self):
        self.assertRejects(self.H + 'h_bucket{le="fast"} 1\n', 2, "invalid le label 'fast'")

    def test_le_go_only_spelling(self):
        self.assertRejects(self.H + 'h_bucket{le="+inf"} 1\n', 2, "invalid le label")

    def test_le_nan(self):
        self.assertRejects(self.H + 'h_bucket{le="NaN"} 1\n', 2, "NaN")

    def test_le_on_sum(self):
        self.assertRejects(self.H + 'h_sum{le="1"} 1\n', 2, "must not carry an le label")

    def test_buckets_not_increasing(self):
        self.assertRejects(self.H + 'h_bucket{le="1"} 1\nh_bucket{le="0.5"} 1\n', 3,
                           "strictly increasing")

    def test_bucket_le_repeated_in_another_spelling(self):
        self.assertRejects(self.H + 'h_bucket{le="1"} 1\nh_bucket{le="1.0"} 1\n', 3,
                           "strictly increasing")

    def test_bucket_after_inf(self):
        self.assertRejects(self.H + 'h_bucket{le="+Inf"} 1\nh_bucket{le="5"} 1\n', 3,
                           "strictly increasing")

    def test_bucket_counts_decrease(self):
        self.assertRejects(self.H + 'h_bucket{le="1"} 5\nh_bucket{le="2"} 4\n', 3,
                           "cumulative")

    def test_negative_bucket_count(self):
        self.assertRejects(self.H + 'h_bucket{le="1"} -1\n', 2, "non-negative")

    def test_nan_count(self):
        self.assertRejects(self.H + 'h_bucket{le="+Inf"} 1\nh_count NaN\n', 3, "non-negative")

    def test_missing_inf_bucket(self):
        self.assertRejects(self.H + 'h_bucket{le="1"} 1\nh_sum 1\nh_count 1\ng 1\n', 4,
                           'no le="+Inf" bucket')

    def test_missing_inf_bucket_in_one_label_set(self):
        msg = self.assertRejects(
            self.H + 'h_bucket{r="a",le="+Inf"} 1\nh_sum{r="a"} 1\nh_count{r="a"} 1\n'
            'h_bucket{r="b",le="1"} 1\nh_sum{r="b"} 1\nh_count{r="b"} 1\n', 7, "+Inf")
        self.assertIn('h{r="b"}', msg)

    def test_missing_count(self):
        self.assertRejects(self.H + 'h_bucket{le="+Inf"} 1\nh_sum 1\n', 3, "no _count")

    def test_missing_sum(self):
        self.assertRejects(self.H + 'h_bucket{le="+Inf"} 1\nh_count 1\n# end\n', 3, "no _sum")

    def test_count_differs_from_inf_bucket(self):
        self.assertRejects(self.H + 'h_bucket{le="+Inf"} 3\nh_sum 1\nh_count 4\n', 4,
                           "differs from the +Inf bucket")

    # ---- summaries

    S = "# TYPE s summary\n"

    def test_summary_sample_without_quantile(self):
        self.assertRejects(self.S + 's{a="x"} 1\n', 2, "needs a quantile label")

    def test_summary_quantile_not_a_float(self):
        self.assertRejects(self.S + 's{quantile="p99"} 1\n', 2, "invalid quantile label")

    def test_summary_quantile_out_of_range(self):
        self.assertRejects(self.S + 's{quantile="99"} 1\n', 2, "between 0 and 1")

    def test_summary_quantile_on_count(self):
        self.assertRejects(self.S + 's_count{quantile="0.5"} 1\n', 2, "must not carry")

    def test_summary_negative_count(self):
        self.assertRejects(self.S + "s_sum 1\ns_count -1\n", 3, "non-negative")


if __name__ == "__main__":
    unittest.main()
