"""Loading: every supported format becomes Documents, and a file that cannot be read says why."""

from __future__ import annotations

import datetime
import io
import json
import os
from pathlib import Path

import docx
import openpyxl
import pptx
import pytest
from conftest import odf, open_corpus, write_corpus
from reportlab.pdfgen import canvas

from qa.load import LoadError, TableFields, load_file, read_file, walk_corpus


def load(path: Path, fields: TableFields = TableFields()):
    return load_file(path, path.name, read_file(path, path.parent, 10**9), fields)


def write_pdf(path: Path, pages: list[str], title: str = "") -> Path:
    pdf = canvas.Canvas(str(path))
    pdf.setTitle(title)  # reportlab would otherwise write the title "untitled"
    for page in pages:
        y = 750
        for line in page.split("\n"):
            pdf.drawString(72, y, line)
            y -= 16
        pdf.showPage()
    pdf.save()
    return path


HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Tide Pools of the Northern Coast | Coastal Journal</title></head>
<body>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/news">Latest news</a></li>
<li><a href="/about">About us</a></li><li><a href="/shop">Shop our prints</a></li></ul></nav></header>
<main><article>
<h1>Tide Pools of the Northern Coast</h1>
<p>The tide pools along the northern coast host more than two hundred species of invertebrates, from
purple sea urchins to giant green anemones that can live for over eighty years.</p>
<h2>When to visit</h2>
<p>The best time to explore is during a minus tide in early summer, when the water retreats far enough to
expose the lowest shelves of rock where the rarest animals shelter.</p>
<ul><li>Wear shoes with good grip.</li><li>Never pry animals off the rocks.</li></ul>
</article>
<section id="comments"><h3>Leave a comment</h3>
<form action="/comment"><label>Your name</label><input name="name"><label>Your email address</label>
<input name="email"><textarea name="body">Write your comment here</textarea><button>Post Comment</button></form>
</section></main>
<footer><p>Copyright 2025 Coastal Journal Media Group. All rights reserved.</p>
<a href="/privacy">Privacy policy</a> <a href="/terms">Terms of service</a></footer>
</body></html>
"""


def test_text_file_becomes_one_document_titled_by_its_name(tmp_path):
    path = write_corpus(tmp_path, {"notes.txt": "Line one\r\nLine two   \r\n"}) / "notes.txt"
    [document] = load(path)
    assert (document.source, document.title, document.text) == ("notes.txt", "notes", "Line one\nLine two")
    assert document.sections == ()


def test_text_with_a_utf16_byte_order_mark_is_decoded(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_bytes("Grüße aus Köln".encode("utf-16"))
    assert load(path)[0].text == "Grüße aus Köln"


def test_markdown_headings_become_sections_and_the_first_is_the_title(tmp_path):
    text = "Intro line before any heading.\n\n# Field guide\n\nBirds of the shore.\n\n## Herons\n\nHerons wait.\n"
    [document] = load(write_corpus(tmp_path, {"guide.md": text}) / "guide.md")
    assert document.title == "Field guide"
    labels = {s.label: document.text[s.start : s.end] for s in document.sections}
    assert {label: text.strip() for label, text in labels.items()} == {
        "Field guide": "Field guide\n\nBirds of the shore.",
        "Herons": "Herons\n\nHerons wait.",
    }
    assert document.location(document.text.index("Herons wait")) == "Herons"
    assert document.location(0) == ""


@pytest.mark.parametrize("name", ["page.html", "page.htm"])
def test_html_keeps_the_article_without_navigation_footer_or_comment_form(tmp_path, name):
    [document] = load(write_corpus(tmp_path, {name: HTML_PAGE}) / name)
    assert "Tide Pools of the Northern Coast" in document.title
    assert "two hundred species of invertebrates" in document.text
    assert "When to visit" in document.text
    assert "Never pry animals off the rocks." in document.text
    for chrome in ["Latest news", "About us", "Shop our prints", "Leave a comment", "Your email address",
                   "Post Comment", "Write your comment", "Copyright", "Privacy policy", "Terms of service"]:
        assert chrome not in document.text


def test_pdf_keeps_the_text_of_each_page_with_its_page_number(tmp_path):
    path = write_pdf(
        tmp_path / "harbour.pdf",
        ["The lighthouse keeper lit the lamp at dusk.", "", "The fog horn sounds every thirty seconds."],
        title="Harbour report",
    )
    [document] = load(path)
    assert document.title == "Harbour report"
    assert [s.label for s in document.sections] == ["page 1", "page 3"]  # the blank page 2 adds nothing
    assert document.location(document.text.index("lighthouse")) == "page 1"
    assert document.location(document.text.index("fog horn")) == "page 3"
    for section in document.sections:
        assert document.text[section.start : section.end].startswith("The ")


def test_pdf_without_a_title_is_titled_by_its_file_name(tmp_path):
    [document] = load(write_pdf(tmp_path / "minutes.pdf", ["Minutes of the harbour board meeting."]))
    assert document.title == "minutes"


def test_docx_headings_become_sections(tmp_path):
    word = docx.Document()
    word.add_paragraph("A preface before any heading.")
    word.add_heading("Birds", level=1)
    word.add_paragraph("The heron waits motionless in the shallows.")
    word.add_heading("Mammals", level=1)
    word.add_paragraph("The otter floats on its back to eat.")
    table = word.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Otter", "Lutra lutra"
    word.save(tmp_path / "guide.docx")
    [document] = load(tmp_path / "guide.docx")
    assert document.title == "Birds"
    assert [s.label for s in document.sections] == ["Birds", "Mammals"]
    assert document.location(document.text.index("heron")) == "Birds"
    assert document.location(document.text.index("otter floats")) == "Mammals"
    assert document.location(document.text.index("Lutra lutra")) == "Mammals"
    assert document.location(document.text.index("preface")) == ""



def travel_deck() -> bytes:
    """Two slides: a title with bullets and speaker notes, and a table with a header row."""
    from pptx.enum.shapes import PP_PLACEHOLDER
    from pptx.util import Inches

    deck = pptx.Presentation()
    deck.core_properties.title = "Travel policy"
    first = deck.slides.add_slide(deck.slide_layouts[1])  # a title and a bulleted body
    title = first.shapes.title.text_frame.paragraphs[0]
    title.add_run().text = "Booking"
    title.add_line_break()  # a line break inside the title
    title.add_run().text = "travel"
    number = next(p for p in deck.slide_layouts[1].placeholders
                  if p.placeholder_format.type == PP_PLACEHOLDER.SLIDE_NUMBER)
    first.shapes.clone_placeholder(number)
    first.placeholders[number.placeholder_format.idx].text_frame.text = "1"
    body = first.placeholders[1].text_frame
    body.text = "Book flights at least 14 days ahead"
    body.add_paragraph().text = "Economy class on flights under 6 hours"
    first.notes_slide.notes_text_frame.text = "Managers approve exceptions in writing."
    second = deck.slides.add_slide(deck.slide_layouts[5])  # a title only
    second.shapes.title.text = "Limits"
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([("Expense Category", "Limit"), ("Accommodation", "$200 per night"),
                             ("Flights", "$600 per flight")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def hr_workbook() -> bytes:
    """A question-and-answer sheet, and a sheet of holidays with a date and a number."""
    workbook = openpyxl.Workbook()
    faq = workbook.active
    faq.title = "FAQ"
    faq.append(["question", "answer"])
    faq.append(["How many vacation days do I get?", "25 days a year, plus public holidays."])
    holidays = workbook.create_sheet("Holidays")
    holidays.append(["Public holidays 2026"])  # a title above the header
    holidays.append(["Holiday", "Date", "Paid", None])
    holidays["D2"] = "Notes"
    holidays.append([])
    holidays.append(["Day after Thanksgiving", datetime.datetime(2026, 11, 27), 1.0, 2 / 3, "Offices close"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_pptx_slides_become_sections_with_their_text_tables_and_notes(tmp_path):
    (tmp_path / "travel.pptx").write_bytes(travel_deck())
    [document] = load(tmp_path / "travel.pptx")
    assert document.title == "Travel policy"
    assert [s.label for s in document.sections] == ["slide 1", "slide 2"]
    lines = document.text.split("\n")
    assert lines[0] == "Booking travel" and "1" not in lines  # nor the slide number
    assert "Book flights at least 14 days ahead" in lines and "Economy class on flights under 6 hours" in lines
    assert "Managers approve exceptions in writing." in lines
    assert "Expense Category: Flights; Limit: $600 per flight" in lines
    assert document.location(document.text.index("$600")) == "slide 2"
    assert document.location(document.text.index("14 days")) == "slide 1"



def test_a_slide_titled_by_a_picture_is_read_by_its_text(tmp_path):
    from PIL import Image
    from pptx.oxml import parse_xml
    from pptx.util import Inches

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.placeholders[1].text_frame.text = "The harbour office opens at eight."
    title = slide.shapes.title._element
    title.getparent().remove(title)
    image = io.BytesIO()
    Image.new("RGB", (2, 2)).save(image, "PNG")
    picture = slide.shapes.add_picture(image, Inches(1), Inches(1))
    picture._element.nvPicPr.nvPr.append(
        parse_xml('<p:ph xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" type="title"/>'))
    deck.save(tmp_path / "logo.pptx")
    [document] = load(tmp_path / "logo.pptx")
    assert document.text == "The harbour office opens at eight." and document.title == "logo"

def test_xlsx_rows_of_every_sheet_become_documents_read_with_their_column_names(tmp_path):
    (tmp_path / "hr.xlsx").write_bytes(hr_workbook())
    documents = load(tmp_path / "hr.xlsx")
    assert [d.source for d in documents] == ["hr.xlsx#1", "hr.xlsx#Holidays:1"]
    assert documents[0].title == "How many vacation days do I get?"
    assert documents[0].text == ("question: How many vacation days do I get?\n"
                                 "answer: 25 days a year, plus public holidays.")
    assert documents[1].text == ("Holiday: Day after Thanksgiving\nDate: 2026-11-27\nPaid: 1\n"
                                 "Notes: 0.6666666667\nE: Offices close")
    assert documents[1].location(0) == "Holidays, row 1"


def test_slides_and_spreadsheets_are_answered_from_and_cited(tmp_path, embedder):
    qa = open_corpus(tmp_path, {"travel.pptx": travel_deck(), "hr.xlsx": hr_workbook()}, embedder)
    flights = qa.ask("What is the limit for flights?")
    assert "$600 per flight" in flights.answer and flights.citations[0].source == "travel.pptx"
    assert flights.citations[0].location == "slide 2"
    vacation = qa.ask("How many vacation days do I get?")
    assert "25 days a year" in vacation.answer and vacation.citations[0].source == "hr.xlsx#1"



HARBOUR_ODT = odf("""<office:text>
  <text:table-of-content><text:index-body><text:p>Opening hours . . . 2</text:p></text:index-body>
  </text:table-of-content>
  <text:h text:outline-level="1">Opening hours</text:h>
  <text:p>The harbour office opens at<text:s/>eight<text:note text:note-class="footnote">
  <text:note-citation>1</text:note-citation>
  <text:note-body><text:p>On public holidays it opens at ten.</text:p></text:note-body></text:note>, and the
  quay closes at <text:span>dusk</text:span>.</text:p>
  <text:p>$ ferry --book<text:line-break/><text:s text:c="2"/>$ ferry --pay</text:p>
  <text:list><text:list-item><text:p>Bring a permit</text:p></text:list-item>
  <text:list-item><text:p>Wear a life jacket</text:p></text:list-item></text:list>
  <text:h text:outline-level="1">Fees</text:h>
  <table:table><table:table-header-rows><table:table-row><table:table-cell><text:p>Boat</text:p></table:table-cell>
  <table:table-cell><text:p>Fee</text:p></table:table-cell></table:table-row></table:table-header-rows>
  <table:table-row><table:table-cell><text:p>Kayak</text:p></table:table-cell>
  <table:table-cell><text:p>5 euros a day</text:p></table:table-cell></table:table-row></table:table>
</office:text>""", "text")


def test_odt_headings_lists_tables_footnotes_and_line_breaks_read_as_in_a_docx(tmp_path):
    (tmp_path / "harbour.odt").write_bytes(HARBOUR_ODT)
    [document] = load(tmp_path / "harbour.odt")
    assert document.title == "Opening hours"
    assert [s.label for s in document.sections] == ["Opening hours", "Fees"]
    assert document.text.split("\n") == [
        "Opening hours", "",
        "The harbour office opens at eight1, and the quay closes at dusk.", "",
        "On public holidays it opens at ten.", "",
        "$ ferry --book", "$ ferry --pay", "",
        "Bring a permit", "Wear a life jacket", "",
        "Fees", "",
        "Boat: Kayak; Fee: 5 euros a day",
    ]


def test_ods_rows_of_every_sheet_and_odp_slides_read_as_xlsx_and_pptx_do(tmp_path):
    cell = "<table:table-cell{}><text:p>{}</text:p></table:table-cell>".format
    sheet = ("<office:spreadsheet><table:table table:name=\"FAQ\"><table:table-row>{}{}</table:table-row>"
             "<table:table-row table:number-rows-repeated=\"1000\"><table:table-cell "
             "table:number-columns-repeated=\"1024\"/></table:table-row><table:table-row>{}{}</table:table-row>"
             "</table:table><table:table table:name=\"Holidays\"><table:table-row>{}{}</table:table-row>"
             "<table:table-row>{}{}</table:table-row></table:table></office:spreadsheet>").format(
        cell("", "question"), cell("", "answer"), cell("", "How many vacation days do I get?"),
        cell("", "25 days a year."), cell("", "Holiday"), cell("", "Date"), cell("", "Day after Thanksgiving"),
        cell(' office:value-type="date" office:date-value="2026-11-27"', "27/11/26"))
    (tmp_path / "hr.ods").write_bytes(odf(sheet, "spreadsheet"))
    documents = load(tmp_path / "hr.ods")
    assert [d.source for d in documents] == ["hr.ods#1", "hr.ods#Holidays:1"]
    assert documents[0].text == "question: How many vacation days do I get?\nanswer: 25 days a year."
    assert documents[1].text == "Holiday: Day after Thanksgiving\nDate: 2026-11-27"

    frame = '<draw:frame presentation:class="{}"><draw:text-box>{}</draw:text-box></draw:frame>'.format
    deck = ("<office:presentation><draw:page>{}{}{}<presentation:notes>{}</presentation:notes></draw:page>"
            "</office:presentation>").format(
        frame("title", "<text:p>Booking travel</text:p>"),
        frame("outline", "<text:list><text:list-item><text:p>Book flights 14 days ahead</text:p></text:list-item>"
                         "</text:list>"),
        frame("page-number", "<text:p>1</text:p>"),
        frame("notes", "<text:p>Managers approve exceptions.</text:p>"))
    (tmp_path / "travel.odp").write_bytes(odf(deck, "presentation"))
    [slides] = load(tmp_path / "travel.odp")
    assert slides.title == "Booking travel" and [s.label for s in slides.sections] == ["slide 1"]
    assert slides.text == "Booking travel\n\nBook flights 14 days ahead\n\nManagers approve exceptions."

def test_jsonl_rows_become_documents_using_the_chosen_fields(tmp_path):
    rows = [
        {"key": "a1", "headline": "Otters", "body": "Otters use stones as tools.", "text": "ignored"},
        {"key": "b2", "headline": "Herons", "body": "Herons hunt in shallow water."},
        {"key": "c3", "headline": "Empty", "body": ""},
    ]
    path = write_corpus(tmp_path, {"animals.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n\n"}) / "animals.jsonl"
    documents = load(path, TableFields(text="body", title="headline", id="key"))
    assert [(d.source, d.title, d.text) for d in documents] == [
        ("animals.jsonl#a1", "Otters", "Otters use stones as tools."),
        ("animals.jsonl#b2", "Herons", "Herons hunt in shallow water."),
    ]
    assert [d.location(0) for d in documents] == ["row 1", "row 2"]


def test_csv_rows_become_documents_using_the_chosen_fields(tmp_path):
    text = (
        'ref,name,content\nq1,Parking,"Parking is free on Sundays, and costs 2 euros otherwise."\n'
        "q2,Hours,Open 9 to 5\n"
    )
    path = write_corpus(tmp_path, {"faq.csv": text}) / "faq.csv"
    documents = load(path, TableFields(text="content", title="name", id="ref"))
    assert [(d.source, d.title, d.text) for d in documents] == [
        ("faq.csv#q1", "Parking", "Parking is free on Sundays, and costs 2 euros otherwise."),
        ("faq.csv#q2", "Hours", "Open 9 to 5"),
    ]


def test_csv_cells_may_hold_long_documents(tmp_path):
    article = "The harbour wall was rebuilt in granite. " * 6000  # ~240 KB in one cell
    [document] = load(write_corpus(tmp_path, {"long.csv": f'id,text\n1,"{article}"\n'}) / "long.csv")
    assert document.text == article.strip()


def test_a_table_is_split_as_a_question_file_is(tmp_path):
    # qa.tables reads both: a CSV by the delimiter its first line uses most, spaces after it
    # skipped; a JSONL at "\n" only, so a string may hold another line separator
    tables = {
        "spaced.csv": 'id, title, text\n1, Otters, "Otters float, holding hands."\n',
        "piped.csv": "id|title|text\n2|Herons|Herons hunt in shallow water.\n",
        "rows.jsonl": json.dumps({"id": "3", "text": "Line one\u2028still row three."}, ensure_ascii=False) + "\n",
    }
    folder = write_corpus(tmp_path, tables)
    documents = [d for name in tables for d in load(folder / name)]
    assert [(d.source, d.text) for d in documents] == [
        ("spaced.csv#1", "Otters float, holding hands."),
        ("piped.csv#2", "Herons hunt in shallow water."),
        ("rows.jsonl#3", "Line one\u2028still row three."),
    ]


def test_rows_with_repeated_or_missing_ids_keep_distinct_sources(tmp_path):
    text = "id,text\n7,First row text\n7,Second row text\n,Third row text\n"
    documents = load(write_corpus(tmp_path, {"rows.csv": text}) / "rows.csv")
    assert len({d.source for d in documents}) == 3
    assert [d.text for d in documents] == ["First row text", "Second row text", "Third row text"]


@pytest.mark.parametrize("name,content", [
    ("faq.jsonl", '{"question": "How do I reset my badge?", "answer": "Visit the front desk with an ID."}\n'),
    ("faq.csv", 'question,answer\nHow do I reset my badge?,Visit the front desk with an ID.\n'),
])
def test_table_without_a_text_field_reads_its_columns_by_name(tmp_path, name, content):
    [document] = load(write_corpus(tmp_path, {name: content}) / name)
    assert document.text == "question: How do I reset my badge?\nanswer: Visit the front desk with an ID."
    assert document.title == "How do I reset my badge?"


def test_folders_are_walked_recursively_and_hidden_or_unknown_files_are_counted_by_kind(tmp_path):
    write_corpus(tmp_path, {
        "a.txt": "a", "deep/er/b.md": "b", "deep/c.HTML": "c", "d.pdf": b"d", "e.docx": b"e",
        "f.jsonl": "f", "g.csv": "g", "notes.txt/inside.txt": "a folder named like a file is walked",
        ".hidden.txt": "h", ".git/config.txt": "h", "deep/.cache/x.md": "h",
        "image.png": b"\x89PNG", "data.bin": b"\x00", "README": "no suffix",
    })
    files, ignored = walk_corpus(tmp_path)
    assert [f.source for f in files] == [
        "a.txt", "d.pdf", "deep/c.HTML", "deep/er/b.md", "e.docx", "f.jsonl", "g.csv", "notes.txt/inside.txt",
    ]
    assert ignored == {"hidden": 3, ".png": 1, ".bin": 1, "": 1}


def _broken_symlink(folder: Path) -> Path:
    os.symlink(folder / "gone.txt", folder / "link.txt")
    return folder / "link.txt"


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "pipe.txt")
    return folder / "pipe.txt"


def _file(name: str, content: bytes):
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return make


@pytest.mark.parametrize(
    "make,reason",
    [
        (_file("empty.txt", b""), "empty"),
        (_file("blank.md", b" \n\t\n"), "empty"),
        (_file("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "binary file"),
        (_file("broken.pdf", b"%PDF-1.4\n1 0 obj garbage"), "PDF"),
        (_file("broken.docx", b"PK\x03\x04 not really a zip"), "DOCX"),
        (_file("menu.html", b"<html><body><nav><a href='/'>Home</a> <a href='/blog'>Blog</a></nav></body></html>"),
         "no main text"),
        (_file("bad.jsonl", b'{"text": "fine"}\n{"text": oops}\n'), "line 2"),
        (_broken_symlink, "broken symlink"),
        (_fifo, "not a regular file"),
    ],
    ids=["empty", "whitespace", "binary", "corrupt-pdf", "corrupt-docx", "html-without-text",
         "bad-jsonl", "broken-symlink", "fifo"],
)
def test_unreadable_files_raise_a_one_line_reason(tmp_path, make, reason):
    path = make(tmp_path)
    [found], _ = walk_corpus(tmp_path)
    assert found.path == path
    with pytest.raises(LoadError, match=reason) as error:
        load(path)
    assert "\n" not in str(error.value)
