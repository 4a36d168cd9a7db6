"""Word lists: one entry a line, comments and blank lines skipped, UTF-8 or a clear error."""

import pytest

from filters.wordlists import WordListError, decode_word_list, packaged_word_list, parse_word_list, read_word_list


def test_entries_keep_their_order_and_inner_spaces_without_comments_or_blank_lines():
    lines = ["# sensitive words", "", "赌博", "  出售 枪支  # a phrase with a space", "   ", "#only a comment",
             "冰毒#no space before the comment", "赌博"]
    assert parse_word_list(lines) == ["赌博", "出售 枪支", "冰毒", "赌博"]


def test_only_the_first_hash_starts_the_comment():
    assert parse_word_list(["a # b # c"]) == ["a"]


def test_bytes_decode_with_or_without_a_byte_order_mark():
    body = "# list\n欧阳\r\n王\n\n".encode("utf-8")
    assert decode_word_list(body, "x.txt") == ["欧阳", "王"]
    # Windows editors save UTF-8 with a BOM; it must not glue onto the first entry.
    assert decode_word_list(b"\xef\xbb\xbf" + "欧阳\n王\n".encode("utf-8"), "x.txt") == ["欧阳", "王"]
    assert decode_word_list(b"", "x.txt") == []


def test_a_list_in_another_encoding_names_the_file_the_line_and_the_byte():
    body = "王\n李\n".encode("utf-8") + "赵".encode("gbk") + b"\n"
    with pytest.raises(WordListError) as err:
        decode_word_list(body, "my/surnames.txt")
    message = str(err.value)
    start = len("王\n李\n".encode("utf-8"))
    assert message.startswith("my/surnames.txt: not UTF-8 text (line 3, ")
    assert f"byte {start}:" in message
    assert message.endswith("; save the list as UTF-8, one entry per line")
    assert isinstance(err.value.__cause__, UnicodeDecodeError)
    # a bad first line is line 1 (the count starts at 1, not at 0)
    with pytest.raises(WordListError, match=r"\(line 1, byte 0:"):
        decode_word_list(b"\xff\n", "a.txt")


def test_a_byte_order_mark_does_not_shift_the_reported_line():
    with pytest.raises(WordListError, match=r"\(line 2, "):
        decode_word_list(b"\xef\xbb\xbf" + "王\n".encode("utf-8") + b"\xc3\x28\n", "a.txt")


def test_read_word_list_reads_a_file_and_names_it_on_error(tmp_path):
    path = tmp_path / "words.txt"
    path.write_bytes("# mine\n赌博\n".encode("utf-8"))
    assert read_word_list(str(path)) == ["赌博"]
    path.write_bytes(b"\x80")
    with pytest.raises(WordListError, match=str(path).replace("\\", "\\\\") + ": not UTF-8"):
        read_word_list(str(path))


def test_packaged_lists_are_read_from_filters_data():
    surnames = packaged_word_list("surnames.txt")
    assert {"王", "李", "欧阳", "司马"} <= set(surnames)
    assert all(entry and not entry.startswith("#") and entry == entry.strip() for entry in surnames)
    with pytest.raises(FileNotFoundError):
        packaged_word_list("no_such_list.txt")


def test_a_broken_packaged_list_is_named_by_its_place_in_the_package(tmp_path, monkeypatch):
    from filters import wordlists

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "surnames.txt").write_bytes(b"\xff")
    monkeypatch.setattr(wordlists.resources, "files", lambda package: tmp_path if package == "filters" else None)
    with pytest.raises(WordListError, match=r"^filters/data/surnames\.txt: not UTF-8"):
        packaged_word_list("surnames.txt")
