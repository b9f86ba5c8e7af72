"""Real documents read as prose: wrapped lines joined, hyphenated words mended, structure kept as
line boundaries, page furniture left out, table rows read with their headers."""

from __future__ import annotations

from pathlib import Path

import docx
from conftest import write_corpus
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from qa.chunk import sentence_spans
from qa.load import load_file, read_file


def load(path: Path):
    return load_file(path, path.name, read_file(path, path.parent, 10**9))


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


WRAPPED_HTML = """<!DOCTYPE html>
<html><head><title>F.2. amcheck</title></head><body>
<div class="navheader"><a href="a.html">Prev</a> <a href="up.html">Up</a> <a href="b.html">Next</a></div>
<div class="sect1"><h2>F.2. amcheck &#8212; tools to verify table and index consistency</h2>
<p>The <code class="filename">amcheck</code> module provides functions that allow you to
  verify the logical consistency of the structure of relations.  If the
  structure appears to be valid, no error is raised.</p>
<p>The functions verify various <em>invariants</em> in the structure of the representation of
  particular relations.</p>
<ul>
<li><p>Structural inconsistencies caused by incorrect operator class
  implementations.</p></li>
<li><p>Corruption caused by hypothetical undiscovered bugs in the
  underlying storage code.</p></li>
</ul>
<pre>
SELECT bt_index_check(index =&gt; c.oid)
  FROM pg_index i;
</pre>
</div>
<div class="navfooter"><table><tr><td><a href="a.html">Prev</a></td><td><a href="up.html">Up</a></td>
<td><a href="b.html">Next</a></td></tr></table></div>
</body></html>
"""


def test_html_paragraphs_wrapped_in_the_source_are_one_sentence_each(tmp_path):
    [document] = load(write_corpus(tmp_path, {"amcheck.html": WRAPPED_HTML}) / "amcheck.html")
    said = sentences(document.text)
    assert ("The amcheck module provides functions that allow you to verify the logical consistency of the "
            "structure of relations.") in said
    assert "If the structure appears to be valid, no error is raised." in said
    assert "Structural inconsistencies caused by incorrect operator class implementations." in said
    assert "SELECT bt_index_check(index => c.oid)\n  FROM pg_index i;" in document.text  # <pre> kept as is
    assert "Prev" not in document.text and "Next" not in document.text
    heading = "F.2. amcheck — tools to verify table and index consistency"
    assert [s.label for s in document.sections] == [heading]
    assert document.location(document.text.index("logical consistency")) == heading


def test_html_table_rows_are_read_with_their_headers(tmp_path):
    page = """<html><body><main><h1>Travel expenses</h1><table>
    <thead><tr><th>Expense Category</th><th>Limit</th></tr></thead>
    <tbody><tr><td>Accommodation</td><td>$200 per
    night</td></tr><tr><td>Flights</td><td>$600 per flight</td></tr></tbody></table></main></body></html>"""
    [document] = load(write_corpus(tmp_path, {"travel.html": page}) / "travel.html")
    assert "Expense Category: Flights; Limit: $600 per flight" in sentences(document.text)
    assert "Expense Category: Accommodation; Limit: $200 per night" in sentences(document.text)


def write_two_page_pdf(path: Path) -> Path:
    """A contents page, then two pages of body text with a running footer and page numbers; one
    word is hyphenated across a line end."""
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle("Field station handbook")
    pdf.setFont("Helvetica", 11)

    def page(lines: list[str], number: int | None) -> None:
        y = 780
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 15
        pdf.drawString(72, 40, "Field Station Handbook - Northern Coast Research Programme")
        if number:
            pdf.drawString(500, 40, str(number))
        pdf.showPage()

    page(["Contents"] + [f"{n}. {title} . . . . . . . . . . . . . . . . . . . . {n + 1}" for n, title in
                         enumerate(["Arrival and safety", "Boats and tides", "Samples", "Departure",
                                    "Emergency contacts"], start=1)], None)
    page([
        "Arrival and safety",
        "Every visitor signs the station logbook on arrival and attends the safety briefing that the",
        "duty officer gives at nine o'clock each morning. Life jackets are compulsory on all boats, and",
        "the small launch may only leave the harbour when the tide tables show at least two hours of",
        "rising water. Visitors are reminded that the rocks near the jetty are slippery at low",
        "tide, and that the station's first-aid kit is kept in the boathouse next to the radio.",
    ], 2)
    page([
        "Samples",
        "Water samples are labelled with the date, the station number and the depth, and they are stored",
        "in the cold room until the weekly courier collects them. Sediment cores need a separate permit",
        "from the harbour authority, which takes about ten working days to arrive by post.",
    ], 3)
    pdf.save()
    return path


def test_pdf_wraps_and_hyphens_are_undone_and_furniture_left_out(tmp_path):
    [document] = load(write_two_page_pdf(tmp_path / "handbook.pdf"))
    said = sentences(document.text)
    assert ("Every visitor signs the station logbook on arrival and attends the safety briefing that the "
            "duty officer gives at nine o'clock each morning.") in said
    assert ("Sediment cores need a separate permit from the harbour authority, which takes about ten working "
            "days to arrive by post.") in said
    assert "Research Programme" not in document.text  # the running footer
    assert ". . . ." not in document.text and "Emergency contacts" not in document.text  # the contents page
    assert not any(s.strip().isdigit() for s in said)  # page numbers
    assert document.location(document.text.index("Sediment cores")) == "page 3"


def test_pdf_footnotes_are_paragraphs_of_their_own_not_the_end_of_the_page(tmp_path):
    path = tmp_path / "harbour.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setFont("Helvetica", 11)
    body = [
        "The harbour master publishes the tide tables for the coming month on the first Monday of each",
        "month, and the tables include the predicted heights of high and low water for every single day.",
        "Boats may leave the harbour only when the tables show at least two hours of rising water ahead",
        "of them, and every departure is written in the station logbook by the duty officer in charge of",
    ]
    for i, line in enumerate(body):
        pdf.drawString(72, 780 - 15 * i, line)
    pdf.setFont("Helvetica", 8)
    pdf.drawString(72, 90, "\u00b9The logbook is kept in the boathouse, next to the radio and the first-aid kit, and")
    pdf.drawString(72, 80, "is checked by the station manager every Friday.")
    pdf.drawString(72, 70, "2Tide tables for the following year are printed in December, a year ahead.")
    pdf.drawString(300, 40, "7")
    pdf.showPage()
    pdf.save()
    [document] = load(path)
    said = sentences(document.text)
    assert said[-3].endswith("by the duty officer in charge of"), said  # goes on over the page
    assert ("\u00b9The logbook is kept in the boathouse, next to the radio and the first-aid kit, and is checked by "
            "the station manager every Friday.") in said, said
    assert said[-1] == "2Tide tables for the following year are printed in December, a year ahead.", said


def test_pdf_word_hyphenated_at_a_line_end_is_mended(tmp_path):
    path = tmp_path / "tides.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for y, line in zip((780, 765, 750), [
        "The harbour master publishes the tide tables for the coming month on the first Monday of each",
        "month, and the tables include the predicted heights of high and low water for every day of infor-",
        "mation published by the national hydrographic office in its annual almanac of information.",
    ]):
        pdf.drawString(40, y, line)
    pdf.showPage()
    pdf.save()
    [document] = load(path)
    assert "every day of information published by the national" in document.text


def test_wrapped_plain_text_and_rfc_pages_read_as_paragraphs(tmp_path):
    page_one = (
        "RFC 9999                  Harbour Signals                  June 2026\n\n"
        "1.  Introduction\n\n"
        "   A harbour signal is a light or flag shown at the harbour entrance\n"
        "   that tells vessels whether they may enter.  Signals are shown from\n"
        "   sunrise to sunset and, at night, by lights alone.\n\n"
        "   The signals defined here are:\n\n"
        "   o  a red flag, meaning that the entrance is closed to all arriving\n"
        "      and departing vessels;\n\n"
        "   o  a green flag, meaning that vessels may enter.\n\n"
        "   Each signal is repeated by radio on channel 12 every fifteen minutes\n"
        "   while it is shown, so that vessels that are still out at sea, or that\n"
        "   are out of sight of the entrance behind the breakwater or the pier,\n\n"
        "Harbour, et al.             Informational                     [Page 1]\n"
    )
    page_two = (
        "RFC 9999                  Harbour Signals                  June 2026\n\n"
        "   can hear it as well.\n\n"
        "Harbour, et al.             Informational                     [Page 2]\n"
    )
    [document] = load(write_corpus(tmp_path, {"rfc9999.txt": page_one + "\f" + page_two}) / "rfc9999.txt")
    said = sentences(document.text)
    assert ("A harbour signal is a light or flag shown at the harbour entrance that tells vessels whether "
            "they may enter.") in said
    assert "o  a red flag, meaning that the entrance is closed to all arriving and departing vessels;" in said
    assert "1. Introduction" in said and document.sections[0].label == "1. Introduction"
    assert ("Each signal is repeated by radio on channel 12 every fifteen minutes while it is shown, so that "
            "vessels that are still out at sea, or that are out of sight of the entrance behind the breakwater "
            "or the pier, can hear it as well.") in said  # a paragraph runs on across the page break
    assert "Informational" not in document.text and "June 2026" not in document.text


def test_plain_text_headings_become_sections(tmp_path):
    text = (
        "Travel Policy\n=============\n\nThis policy covers travel booked by staff.\n\n"
        "HOTELS\n\nA hotel room costs at most $250 a night.\n\n"
        "2.1. Flights\n\nA flight costs at most $600.\n\n"
        "Book early. It is cheaper.\n"
    )
    [document] = load(write_corpus(tmp_path, {"policy.txt": text}) / "policy.txt")
    located = {s.label: document.text[s.start : s.end] for s in document.sections}
    assert list(located) == ["Travel Policy", "HOTELS", "2.1. Flights"]
    assert located["HOTELS"] == "HOTELS\n\nA hotel room costs at most $250 a night."
    assert "=====" not in document.text and "Book early. It is cheaper." in located["2.1. Flights"]


def test_lines_filled_short_of_the_width_are_joined(tmp_path):
    # `fmt` and re-filled paragraphs break before the column is full: a long line that stops
    # mid-sentence still runs on, and a hanging "A:  " label keeps its paragraph together.
    text = (
        "A:  Since multi-threaded compression is done by splitting the data into\n"
        "    blocks that are compressed individually, if the input file is too\n"
        "    small for the block size, then many threads cannot be used. The\n"
        "    default block size increases when the compression level is\n"
        "    increased. For example, xz -6 uses 8 MiB LZMA2 dictionary and\n"
        "    24 MiB blocks, and xz -9 uses 64 MiB LZMA dictionary and 192 MiB\n"
        "    blocks.\n"
    )
    [document] = load(write_corpus(tmp_path, {"faq.txt": text}) / "faq.txt")
    assert "\n" not in document.text
    assert "For example, xz -6 uses 8 MiB LZMA2 dictionary and 24 MiB blocks, and xz -9" in document.text


def test_short_lines_of_a_note_stay_lines(tmp_path):
    note = "Attendees:\nAnna Berg\nTom Reyes\n\nThe board approved the budget."
    [document] = load(write_corpus(tmp_path, {"note.txt": note}) / "note.txt")
    assert document.text == note


def test_docx_table_rows_carry_their_headers_and_lists_stay_items(tmp_path):
    word = docx.Document()
    word.add_heading("Travel policy", level=1)
    word.add_paragraph("Expenses are reimbursed up to the limits below.")
    table = word.add_table(rows=3, cols=3)
    for r, row in enumerate([("Expense Category", "Limit", "Notes"),
                             ("Accommodation", "$200 per night", "Book through the travel desk."),
                             ("Flights", "$600 per flight", "Economy class only.")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    word.add_paragraph("Keep every receipt.", style="List Bullet")
    word.add_paragraph("Submit claims within 30 days.", style="List Bullet")
    word.save(tmp_path / "policy.docx")
    [document] = load(tmp_path / "policy.docx")
    assert "Expense Category: Flights; Limit: $600 per flight; Notes: Economy class only." in document.text.split("\n")
    assert "Keep every receipt.\nSubmit claims within 30 days." in document.text
    assert document.location(document.text.index("Flights")) == "Travel policy"


def test_markdown_soft_breaks_joined_and_table_rows_named(tmp_path):
    text = (
        "# Holidays\n\nThe office is closed on the public holidays below, and staff who must\n"
        "work on one of them get a day off in lieu.\n\n"
        "| Holiday | Date |\n|---|---|\n| Thanksgiving Day | November 26 |\n"
        "| Day after Thanksgiving | November 27 |\n\n- first item\n- second\n  item continued\n\n"
        "<!-- an HTML comment alone in a block -->\n"
    )
    [document] = load(write_corpus(tmp_path, {"holidays.md": text}) / "holidays.md")
    said = sentences(document.text)
    assert ("The office is closed on the public holidays below, and staff who must work on one of them get a "
            "day off in lieu.") in said
    assert "Holiday: Day after Thanksgiving; Date: November 27" in said
    assert "second item continued" in said


def test_html_page_wrapped_in_a_nav_named_container_keeps_its_content(tmp_path):
    # A Sphinx theme wraps the whole page in "wy-nav-content-wrap"; headings end in a "¶" permalink.
    paragraph = "The key command allows you to set multiple access keys or passwords per repository."
    page = (
        '<html><body><div class="wy-nav-side"><ul><li><a href="a.html">Installation</a></li>'
        '<li><a href="b.html">Backup</a></li></ul></div>'
        '<section class="wy-nav-content-wrap"><div class="wy-nav-content"><div role="main">'
        f'<h1>Manage repository keys<a class="headerlink" href="#keys">¶</a></h1><p>{paragraph}</p>'
        "</div></div></section></body></html>"
    )
    no_main = page.replace('role="main"', "").replace("<div class=\"wy-nav-side\">", "<div class=\"sidebar\">")
    for name, markup in (("with_main.html", page), ("no_main.html", no_main)):
        [document] = load(write_corpus(tmp_path, {name: markup}) / name)
        assert document.text == f"Manage repository keys\n\n{paragraph}", name
        assert [s.label for s in document.sections] == ["Manage repository keys"]
