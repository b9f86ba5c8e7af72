"""Answers that answer: a restating sentence is read on into the content, and a follow-up is read
with its conversation while a question that stands on its own is answered as if asked alone."""

from __future__ import annotations

import pytest
from conftest import open_corpus

from qa import reading
from qa.lexical import tokenize
from qa.pipeline import _rank, is_follow_up, read_question
from qa.types import Turn

POLICY = """# Travel policy

Employees who travel for work are reimbursed for reasonable costs within the limits of this policy.
Every claim needs the original receipts and the approval of the employee's manager.

| Expense Category | Limit | Notes |
|---|---|---|
| Accommodation | $200 per night | Book through the travel desk. |
| Flights | $600 per flight | Economy class only. |
| Meals in Toronto | $75 per day | Alcohol is not reimbursed. |

# Sabbatical

After seven years of service an employee may take a paid sabbatical of twelve weeks.
A sabbatical that is not taken is not paid out when the employee leaves the company.
"""

ALLIANCE = """The harbour alliance faces significant hurdles. Fishing quotas are disputed by the northern ports \
every spring. Storm damage to the shared breakwater has not been repaired since 2019, and nobody agrees who \
should pay for it. The ports also disagree about dredging the channel.

The alliance was founded in 1987 by the mayors of Kessington and Dunmore, who signed its charter at the \
lighthouse on 3 June 1987 after two years of talks."""


FAQ = """Harbour FAQ

Q:  Why are the harbour gates closed at night when the tide is
    low? Is that a rule?

A:  At low tide the channel is too shallow for laden boats, so the
    gates stay shut until the water rises above two metres.  The
    harbour master reopens them by hand.

Q:  Where do I pay the mooring fee?

A:  At the harbour office, in cash or by card.
"""


@pytest.fixture(scope="module")
def qa(tmp_path_factory, embedder):
    return open_corpus(tmp_path_factory.mktemp("follow"),
                       {"policy.md": POLICY, "alliance.txt": ALLIANCE, "faq.txt": FAQ}, embedder)


def test_a_sentence_that_restates_the_question_is_followed_by_its_content(qa):
    answer = qa.ask("What hurdles does the harbour alliance face?")
    assert not answer.abstained
    assert "Fishing quotas are disputed" in answer.answer


def test_a_faq_question_is_answered_by_its_answer_not_restated(qa):
    answer = qa.ask("Why are the harbour gates closed at night when the tide is low?")
    assert answer.answer.startswith("A:  At low tide the channel is too shallow for laden boats, so the gates stay "
                                    "shut until the water rises above two metres. [1]")
    assert "Q:" not in answer.answer and "Is that a rule?" not in answer.answer


def test_a_table_row_is_found_by_its_row_and_cited_with_its_headers(qa):
    answer = qa.ask("What is the limit for flights?")
    assert "Expense Category: Flights; Limit: $600 per flight" in answer.answer
    assert answer.citations[0].source == "policy.md"


@pytest.mark.parametrize("question,follow_up", [
    ("Who did he meet on that visit?", True), ("When was it signed?", True), ("And for flights?", True),
    ("Over what period?", True), ("Why is that?", True), ("What about Toronto?", True),
    ("What is the dress code?", False), ("Which module verifies indexes that are corrupt?", False),
    ("Is there a limit on hotels?", False),
    ("Can I clone from one?", True), ("Which one should I use?", True),  # "one" standing for a thing
    ("How do I limit the crane to one lift an hour?", False), ("Which option shows one line per commit?", False),
])
def test_follow_ups_are_told_from_questions_that_stand_alone(question, follow_up):
    assert is_follow_up(question) is follow_up


def test_an_elliptical_follow_up_takes_its_subject_from_the_turn_before(qa):
    first = qa.ask("What is the hotel limit per night?")
    assert "$200 per night" in first.answer
    follow = qa.ask("And for flights?", history=[Turn(first.question, first.answer)])
    assert not follow.abstained
    assert "$600 per flight" in follow.answer


def test_a_pronoun_follow_up_is_answered_from_the_turn_before(qa):
    first = qa.ask("Who founded the harbour alliance?")
    follow = qa.ask("When did they sign its charter?", history=[Turn(first.question, first.answer)])
    assert not follow.abstained
    assert "3 June 1987" in follow.answer


def test_a_question_that_stands_alone_is_answered_exactly_as_if_asked_alone(qa):
    history = [Turn("What is the meal allowance in Toronto?", "Meals in Toronto: $75 per day [1]")]
    for question in ["What is the dress code?", "How long is the paid sabbatical?"]:
        alone, after = qa.ask(question), qa.ask(question, history=history)
        assert (after.answer, after.abstained, after.confidence) == (alone.answer, alone.abstained, alone.confidence)
    assert qa.ask("What is the dress code?", history=history).abstained


def test_history_never_lends_confidence_to_an_off_topic_follow_up(qa):
    first = qa.ask("What is the meal allowance in Toronto?")
    assert not first.abstained
    follow = qa.ask("What is its dress code?", history=[Turn(first.question, first.answer)])
    assert follow.abstained and follow.confidence < qa.min_confidence


NOTES = {
    "gates.txt": """Harbour gates

Is there any way for the night watch to open the north gate after midnight without waking the harbour
master up?

Not on their own. The north gate opens after midnight only with the night key, which the harbour master
keeps in the office safe.
""",
    "fees.txt": """Mooring fees

Since the spring of 2021 the harbour board has calculated the mooring fees of every visiting boat as
follows. Each metre of boat length costs four euros a night, and boats over
twelve metres pay a flat surcharge of ten euros.
""",
    "bylaws.txt": """Harbour bylaws

The longest stay at a visitor mooring is set by the harbour bylaw MOOR_MAX. The default value of this bylaw
is 30 nights, and the harbour master may extend it in winter.
""",
}


@pytest.fixture(scope="module")
def notes(tmp_path_factory, embedder):
    return open_corpus(tmp_path_factory.mktemp("notes"), NOTES, embedder)


def test_a_question_in_the_text_is_never_the_answer_what_follows_it_is(notes):
    answer = notes.ask("Can the night watch open the north gate after midnight?")
    assert not answer.abstained
    assert "night key" in answer.answer, answer.answer
    assert "?" not in answer.answer


def test_a_sentence_announcing_what_follows_is_read_on(notes):
    answer = notes.ask("How are mooring fees calculated?")
    assert "four euros a night" in answer.answer, answer.answer


def test_a_sentence_pointing_back_within_its_opening_words_joins_the_one_it_points_to(notes):
    answer = notes.ask("How many nights is the longest stay at a visitor mooring by default?")
    assert "30 nights" in answer.answer and "MOOR_MAX" in answer.answer, answer.answer


def test_a_sentence_found_in_two_copies_of_a_page_is_said_once(tmp_path, embedder):
    page = "Visitor moorings\n\nThe visitor moorings are on the east pontoon, next to the fuel dock.\n"
    qa = open_corpus(tmp_path, {"moorings.txt": page, "copy/moorings.txt": page}, embedder)
    answer = qa.ask("Where are the visitor moorings?")
    assert answer.answer.count("east pontoon") == 1, answer.answer


KINDS = {
    "locks.txt": """Lock files

Stale lock files are left behind on the shared drives of the harbour office far more often than on any
of the laptops that staff take home at night. Stale lock files are left behind because the booking tool
deletes its lock only when it exits normally, so every crash leaves the lock in place.

Stale lock files on a shared drive block every other user of the harbour booking tool until they are
removed, which the help desk is often asked about. To get rid of one, delete booking.lock from the drive.
""",
}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory, embedder):
    return open_corpus(tmp_path_factory.mktemp("kinds"), KINDS, embedder)


def test_a_why_question_is_answered_by_the_sentence_that_gives_the_reason(kinds):
    answer = kinds.ask("Why are stale lock files left behind on shared drives?")
    assert "because the booking tool deletes its lock" in answer.sentences[0].text, answer.answer


def test_a_question_asking_what_causes_something_is_answered_by_the_sentence_that_gives_the_reason(kinds):
    answer = kinds.ask("What causes stale lock files to be left behind on shared drives?")
    assert "because the booking tool deletes its lock" in answer.sentences[0].text, answer.answer


def test_a_how_do_i_question_is_answered_by_the_sentence_that_says_what_to_do(kinds):
    answer = kinds.ask("How do I get rid of a stale lock file on a shared drive?")
    assert "delete booking.lock" in answer.sentences[0].text, answer.answer


def test_a_follow_up_whose_own_words_the_passage_lacks_is_answered_by_what_it_means(tmp_path, embedder):
    text = ("Harbour politics\n\nKenji Ito argues that the harbour board moves slowly because every port must agree. "
            "Ito is a professor of maritime law at Dunmore University.\n\n"
            "The harbour festival draws large crowds every summer, and fishing boats are decorated with flags.\n")
    qa = open_corpus(tmp_path, {"politics.txt": text}, embedder)
    first = qa.ask("What does Kenji Ito argue?")
    assert "every port must agree" in first.answer
    follow = qa.ask("Where does he teach?", history=[Turn(first.question, first.answer)])
    assert not follow.abstained and "Dunmore University" in follow.answer, follow.answer
    off_topic = qa.ask("What is his salary?", history=[Turn(first.question, first.answer)])
    assert off_topic.abstained, off_topic.answer


def test_a_statement_inside_a_faq_question_is_read_as_the_question_and_answered_by_its_answer(tmp_path, embedder):
    faq = ("Pontoon FAQ\n\nQ:  I moor a boat of eleven metres at the north pontoon. The shore power socket there "
           "trips every evening at six. Can I fix that myself?\n\nA:  Ask the harbour office for a 32 amp "
           "socket. The 16 amp sockets trip when the evening lights come on.\n")
    qa = open_corpus(tmp_path, {"faq.txt": faq}, embedder)
    answer = qa.ask("The shore power socket at the north pontoon trips every evening. What can I do?")
    assert answer.answer.startswith("A:  Ask the harbour office for a 32 amp socket."), answer.answer
    assert "trips every evening at six" not in answer.answer


def test_a_sentence_read_on_that_ends_with_a_colon_brings_the_block_it_announces(tmp_path, embedder):
    faq = ("Pontoon FAQ\n\nQ:  The shore power at my berth on the east pontoon keeps tripping in the evening, "
           "when every boat along the pontoon switches on its heating and lights. What can I do?\n\n"
           "A:  Lower the power limit of your berth. You set it in the berth file /etc/pontoon/berth.conf:\n\n"
           "POWER_LIMIT=10A\nRESET_AFTER=5min\n\n"
           "If the socket still trips after that, the harbour office can send an electrician to check the "
           "socket and the cable of your berth on the next working day, free of charge for members.\n")
    qa = open_corpus(tmp_path, {"faq.txt": faq}, embedder)
    answer = qa.ask("The shore power at my berth keeps tripping. What can I do?")
    assert answer.answer.startswith("A:  Lower the power limit of your berth."), answer.answer
    assert "POWER_LIMIT=10A" in answer.answer and "RESET_AFTER=5min" in answer.answer, answer.answer
    assert "electrician" not in answer.answer


def test_a_definition_is_read_with_the_term_it_defines(tmp_path, embedder):
    page = """<html><head><title>moorctl(1)</title></head><body><h2>OPTIONS</h2><dl>
<dt>-w</dt><dt>--winter</dt><dd><p>Keeps every booking of the
  season, including the berths nobody has paid for yet, and
  moves them to the winter pontoon.</p></dd>
<dt>-q</dt><dt>--quiet</dt><dd><p>Prints nothing but errors.</p></dd></dl></body></html>"""
    qa = open_corpus(tmp_path, {"moorctl.html": page}, embedder)
    answer = qa.ask("Which option moves the unpaid berths to the winter pontoon?")
    assert answer.answer.startswith("-w [1] --winter [1] Keeps every booking of the season"), answer.answer


TRAFFIC = {
    "traffic.txt": """Harbour traffic

Visits by cruise ships increased by 37% over the past six months, according to the harbour board's annual
report. The board expects the growth to slow once the new terminal in Kessington opens.

Shore power

The shore power sockets on the east pontoon trip every evening because the heaters of all boats switch on
at six. Ask the harbour office to move your berth to a 32 amp socket on the west pontoon.

Fees

Each metre of boat length costs four euros a night at a visitor mooring.
""",
}


@pytest.fixture(scope="module")
def traffic(tmp_path_factory, embedder):
    return open_corpus(tmp_path_factory.mktemp("traffic"), TRAFFIC, embedder)


def _conversation(qa, questions):
    history = []
    for question in questions:
        answer = qa.ask(question, history=history)
        history.append(Turn.answered(question, answer.answer, answer.abstained))
    return answer


def test_a_follow_up_of_a_follow_up_is_read_with_the_question_both_continue(traffic):
    answer = _conversation(traffic, ["By how much did visits by cruise ships increase?", "Over what period?",
                                     "According to whom?"])
    assert not answer.abstained and "harbour board" in answer.answer, answer.answer


def test_a_declined_turn_between_is_passed_over(traffic):
    answer = _conversation(traffic, ["What does a visitor mooring cost per metre?", "What is the Wi-Fi password?",
                                     "And for the increase in cruise ship visits?"])
    assert "37%" in answer.answer, answer.answer
    answer = _conversation(traffic, ["Why does the shore power trip every evening on the east pontoon?",
                                     "What is the Wi-Fi password?", "Why do they switch on at six?"])
    assert "heaters of all boats" in answer.answer, answer.answer


def test_a_follow_up_asking_only_what_it_does_is_answered_one_naming_something_else_declined(traffic):
    """ "fix" is not in the passage, but it asks what to do about "it", which is: what the
    follow-up names ("dress code") must be."""
    first = "Why does the shore power trip every evening on the east pontoon?"
    answer = _conversation(traffic, [first, "How can I fix it?"])
    assert not answer.abstained and "32 amp socket" in answer.answer, answer.answer  # the fix, not the cause again
    assert _conversation(traffic, [first, "What is its dress code?"]).abstained


def _best_answer(tmp_path, embedder, monkeypatch, text: str, questions: list[str]) -> str:
    """The answer to the last of `questions`, asked in turn of one document, with no sentence tied
    to the best one beside it: the best sentence alone, with what it is read with."""
    monkeypatch.setattr(reading, "TIE_MARGIN", 0.0)
    return _conversation(open_corpus(tmp_path, {"news.txt": text}, embedder), questions).answer


def test_a_follow_up_asking_for_a_thing_is_not_answered_with_the_date_asked_for_before(tmp_path, embedder,
                                                                                    monkeypatch):
    text = ("Ferry talks\n\nOn 3 May 2024 the harbour master met the director of the Kessington ferry company in "
            "the harbour office. A contract on winter timetables was signed during that meeting by both sides. "
            "The harbour board will review the timetables next spring.\n")
    answer = _best_answer(tmp_path, embedder, monkeypatch, text,
                          ["When did the harbour master meet the ferry director?",
                           "What was signed during that meeting?"])
    assert answer.startswith("A contract on winter timetables"), answer


def test_an_and_question_asking_its_own_what_does_not_take_the_who_before(tmp_path, embedder, monkeypatch):
    text = ("Harbour news\n\nAnna Berg is the harbour master of Kessington and spoke at the opening of the new quay. "
            "She thanked the builders from Lund and Malmo, and the mayor, Tomas Lund, for the Swedish granite. "
            "Keeping the ferry running in winter, she said, is a duty the harbour owes the island.\n")
    answer = _best_answer(tmp_path, embedder, monkeypatch, text,
                          ["Who is Anna Berg?", "And what does she call keeping the ferry running in winter?"])
    assert answer.startswith("Keeping the ferry running in winter"), answer


def test_the_names_a_conversation_asked_about_are_no_answer_to_who(tmp_path, embedder, monkeypatch):
    text = ("Harbour news\n\nThe harbour master Anna Berg went to Kessington for two days. A ferry contract "
            "for the winter was signed during the visit to Kessington. During the visit she met Tomas Lund, the mayor "
            "of the town, in the old customs house. The contract doubles the number of crossings in winter.\n")
    answer = _best_answer(tmp_path, embedder, monkeypatch, text,
                          ["Which contract was signed during Anna Berg's visit to Kessington?",
                           "Who did she meet on that visit?"])
    assert answer.startswith("During the visit she met Tomas Lund"), answer


def test_two_rows_of_one_table_scored_alike_are_both_given(tmp_path, embedder):
    table = """# Upgrading packages

Keep the harbour servers current with the package tool.

| Command | Effect |
|---|---|
| pkg upgrade | installs newer versions of the installed packages, never removing a package |
| pkg full-upgrade | installs newer versions of the installed packages, removing packages when needed |
| pkg autoremove | removes packages that nothing needs any more |

Run the upgrade in the evening, after the last ferry has left.
"""
    qa = open_corpus(tmp_path, {"pkg.md": table}, embedder)
    answer = qa.ask("Which pkg command upgrades packages even when that means removing some installed packages?")
    assert "Command: pkg full-upgrade; Effect:" in answer.answer, answer.answer
    assert "last ferry" not in answer.answer


def test_every_sentence_of_the_best_passage_scored_alike_is_given(tmp_path, embedder):
    text = ("Harbour services\n\nBoat owners can order fresh drinking water in large tanks at the harbour office "
            "before nine. The harbour cafe sells coffee and cake. Boat owners can order marine diesel by the litre "
            "at the fuel quay until dusk. The ferry to Kessington leaves at noon. Boat owners can order a crane lift "
            "for masts and hulls at the boatyard in spring. The harbour office answers questions about moorings by "
            "phone every morning.\n")
    qa = open_corpus(tmp_path, {"services.txt": text}, embedder)
    answer = qa.ask("What can boat owners order?")
    for what in ("fresh drinking water", "marine diesel", "a crane lift"):
        assert f"Boat owners can order {what}" in answer.answer, answer.answer
    assert "coffee" not in answer.answer


def test_a_passage_ending_in_an_announcement_is_read_on_into_the_next_one(tmp_path, embedder):
    berths = " ".join(f"Berth {i} on the north pontoon was repainted in {2000 + i} and its cleat was replaced by "
                      "the harbour crew." for i in range(6))
    text = (f"Harbour fees\n\n{berths} The board reviewed the state of every berth in the spring. The mooring fees "
            "of visiting boats are set out in the following list:\n\n"
            "- Boats under eight metres pay twelve euros a night.\n"
            "- Boats from eight to twelve metres pay twenty euros a night.\n"
            "- Boats over twelve metres pay thirty euros a night.\n\n"
            "Fees are paid at the harbour office before noon.\n")
    qa = open_corpus(tmp_path, {"fees.txt": text}, embedder)
    announcing = [c for c in range(qa.index.chunk_count) if qa.index.chunk(c).text.endswith("following list:")]
    assert announcing, "the test needs the announcement to end a passage"
    answer = qa.ask("What mooring fees do visiting boats pay?")
    assert "twelve euros a night. [2]" in answer.answer and "thirty euros a night. [2]" in answer.answer, answer.answer
    assert "- Boats under eight metres" in answer.citations[1].passage
    for sentence in answer.sentences:  # each sentence is inside the passage it cites
        cited = answer.citations[sentence.citation - 1]
        assert cited.start <= sentence.start and sentence.end <= cited.end


def test_a_definition_holds_what_its_term_holds(tmp_path, embedder):
    """A sentence defining "-u --unpaid" answers "which option" though it names none itself."""
    from qa.sentence_facts import chunk_facts, document_text

    page = """<html><head><title>moorctl(1)</title></head><body><h2>OPTIONS</h2><dl>
<dt>-u</dt><dt>--unpaid</dt><dd><p>The berths nobody has paid for are also kept.</p></dd>
<dt>harbour plan</dt><dd><p>The plan of the berths is drawn every spring.</p></dd></dl></body></html>"""
    qa = open_corpus(tmp_path, {"moorctl.html": page}, embedder)
    facts = chunk_facts(qa.index, 0)
    text = document_text(qa.index, 0)
    code = {text[s:e]: bool(held) for (s, e), held in zip(facts.spans, facts.code)}
    assert code["The berths nobody has paid for are also kept."] is True
    assert code["The plan of the berths is drawn every spring."] is False


def test_a_pronoun_follow_up_is_not_given_the_answer_it_points_back_to_again(tmp_path, embedder):
    text = ("Harbour diplomacy\n\nThe mayor of Kessington met the harbour master of Dunmore on 3 June 2021 at the "
            "lighthouse, a meeting both ports had sought for years after the storms. A fishing agreement was signed "
            "during the mayor's visit. The agreement lets the boats of both ports fish the northern banks.\n\n"
            "Ferries\n\nThe ferry to Dunmore leaves twice a day from the east pier.\n")
    qa = open_corpus(tmp_path, {"diplomacy.txt": text}, embedder)
    answer = _conversation(qa, ["Who did the mayor of Kessington meet?", "What was signed during that visit?"])
    assert "fishing agreement" in answer.answer, answer.answer


def test_a_faq_answer_is_read_from_its_first_sentence(tmp_path, embedder):
    faq = ("Harbour FAQ\n\nQ: Why is the harbour called Kessington Bay?\n\n"
           "A: When the first settlers landed in 1802, they were reading the logbooks of Admiral Kessington, a "
           "sailor known for his charts of the northern banks. The settlers thought they needed a name that was "
           "short, unique and slightly grand, so they decided to call the harbour Kessington Bay.\n\n"
           "Q: Where is the harbour office?\n\nA: On the east pier, next to the fuel dock.\n")
    qa = open_corpus(tmp_path, {"faq.txt": faq}, embedder)
    answer = qa.ask("Where does the name of the harbour come from?")
    assert "logbooks of Admiral Kessington" in answer.answer, answer.answer


def test_a_yes_or_no_question_is_answered_by_the_sentence_that_says_yes_or_no(tmp_path, embedder):
    text = ("Visitor moorings\n\nA boat of any length can be booked onto the visitor moorings on the east pontoon at "
            "the harbour office. Boats over twelve metres cannot use the visitor moorings on the east pontoon. "
            "Each visitor mooring has water and shore power.\n")
    qa = open_corpus(tmp_path, {"moorings.txt": text}, embedder)
    answer = qa.ask("Can a boat of fifteen metres use the visitor moorings on the east pontoon?")
    assert "cannot use" in answer.sentences[0].text, answer.answer


def test_words_about_the_documents_are_not_searched_for(qa):
    plain = qa.ask("Who are the mayors?")
    assert "Kessington and Dunmore" in plain.answer
    for question in ["Who are the mayors mentioned in the article?", "According to the documents, who are the mayors?"]:
        answer = qa.ask(question)
        assert not answer.abstained and abs(answer.confidence - plain.confidence) < 0.01, (question, answer.confidence)


def test_a_punctuation_mark_named_in_the_question_is_found_written_alone(tmp_path, embedder):
    text = ("Pattern format\n\nEach line of a moorings file gives a pattern of berth names. A blank line matches no "
            "berth and serves as a separator. A pattern may contain wildcards that match any berth name of the "
            "pontoon. An optional prefix \"!\" negates the pattern; any berth excluded by an earlier pattern is "
            "included again. Patterns later in the file override patterns earlier in the file.\n")
    qa = open_corpus(tmp_path, {"moorings.txt": text}, embedder)
    answer = qa.ask("What does an exclamation mark at the start of a pattern do?")
    assert "negates the pattern" in answer.sentences[0].text, answer.answer


def test_a_question_asking_what_is_wrong_is_answered_by_the_sentence_saying_what_is_not_right(tmp_path, embedder):
    text = ("Slipway winches\n\nThe old slipway winch on the north quay serves the small boats of the harbour. The old "
            "slipway winch was built by the harbour smithy in 1952 and painted green in 1990. Its brake cannot hold "
            "boats over two tonnes. The new slipway winch on the south quay serves the larger boats.\n")
    qa = open_corpus(tmp_path, {"winches.txt": text}, embedder)
    answer = qa.ask("What is wrong with the old slipway winch?")
    assert "cannot hold" in answer.answer, answer.answer


def test_a_follow_up_named_in_words_the_documents_use_all_over_is_not_off_topic(tmp_path, embedder):
    from qa.answer import own_share

    notes = {f"radio/note{i}.txt": f"Radio note {i}\n\nThe setting for channel {i} of the harbour radio is kept in a "
             f"file of its own on the radio server, one setting per line." for i in range(8)}
    notes["radio/squelch.txt"] = ("Squelch\n\nTo lower the squelch level of the harbour radio, change squelch_level "
                                  "to 2. The squelch level is read from /etc/radio/squelch.conf when the radio starts.")
    qa = open_corpus(tmp_path, notes, embedder)
    squelch = next(i for i in range(qa.index.chunk_count) if "squelch" in qa.index.chunk(i).text)
    # "file" and "setting" are in most passages: the squelch passage lacking them is still on topic
    assert own_share(qa.index, squelch, tokenize("file setting")) == 1.0
    assert own_share(qa.index, squelch, tokenize("file dress code")) < 0.5
    first = "How do I lower the squelch level of the harbour radio?"
    answer = _conversation(qa, [first, "Which file does that setting go in?"])
    assert not answer.abstained and "/etc/radio/squelch.conf" in answer.answer, answer.answer
    assert _conversation(qa, [first, "What is its dress code?"]).abstained


def test_a_follow_ups_own_words_count_twice_in_the_word_search(tmp_path, embedder):
    notes = {f"rota{i}.txt": f"Crane rota, week {i}\n\nIn week {i} the harbour crane is run by Tom Harris in the "
             f"mornings and by the harbour master's deputy in the afternoons." for i in range(7)}
    notes["checks.txt"] = "Crane checks\n\nThe crane's cables are inspected by the insurer every March."
    qa = open_corpus(tmp_path, notes, embedder)
    first = "Who runs the harbour crane in week 3?"
    reading = read_question("When are its cables inspected?", [Turn(first, qa.ask(first).answer)])
    vector = qa.embedder.encode_queries([reading.query])[0]

    def best(terms):
        return qa.index.chunk(int(_rank(qa.index, vector, terms, "lexical").ids[0])).source

    assert best(tokenize(reading.query)) == "rota3.txt"  # the words of the turn before outweigh its own
    assert best(reading.search_terms()) == "checks.txt"
