"""Comments on both databases (runtime/behaviors/comments.py): a rep asks their manager about a lead's follow-up with
an @mention, the manager is notified and replies, the rep is notified; who may not read the record can neither
comment nor read the thread; the thread on the lead's page."""

from __future__ import annotations

import html
import re

from test_api import PASSWORD, lead
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401

ASK = "@赵经理 客户要求打8折，能批吗？"


def follow_up(api, as_: str, lead_id: str) -> str:
    status, body = api.post("/objects/follow_up/records", as_, {
        "kind": "call", "content": "电话沟通需求", "related_object": "lead", "related_id": lead_id})
    assert status == 201, body
    return body["id"]


def notifications(api, as_: str, lang: str = "zh") -> list[tuple[str, str, str]]:
    status, body = api.get(f"/notifications?lang={lang}", as_)
    assert status == 200, body
    return [(n["title"], n["object"], n["record_id"]) for n in body["items"]]


def invalid(fields: dict) -> tuple[int, dict]:
    count = sum(len(m) for m in fields.values())
    errors = "field error" if count == 1 else "field errors"
    return 422, {"error": {"code": "validation_failed", "message": f"{count} {errors}", "fields": fields}}


def test_a_rep_asks_the_manager_on_a_follow_up_and_the_reply_comes_back(api, people):
    lead_id = lead(api, "rep1", name="张三")["id"]
    fu = follow_up(api, "rep1", lead_id)
    path = f"/objects/follow_up/records/{fu}/comments"
    status, asked = api.post(path, "rep1", {"body": f"  {ASK}  "})
    assert status == 201, asked
    assert asked == {"id": asked["id"], "object": "follow_up", "record_id": fu, "parent": None,
                     "author": people["rep1"], "body": ASK, "mentions": [people["boss"]],
                     "created_at": asked["created_at"]}
    # the manager's bell: who asked, about what, the start of the comment; it opens the lead, whose timeline shows it
    assert notifications(api, "boss") == [
        (f"王伟 在跟进记录「电话沟通需求」的评论中提到了你：{ASK}", "lead", lead_id)]
    assert notifications(api, "boss", "en") == [
        (f"王伟 mentioned you on Follow-up 电话沟通需求: {ASK}", "lead", lead_id)]
    assert notifications(api, "rep1") == []  # the author of the comment (and owner of the follow-up) is not told

    status, replied = api.post(path, "boss", {"body": "可以，本周内签约就批", "parent": asked["id"]})
    assert status == 201, replied
    assert (replied["parent"], replied["author"], replied["mentions"]) == (asked["id"], people["boss"], [])
    assert notifications(api, "rep1") == [
        ("赵经理 回复了你在跟进记录「电话沟通需求」的评论：可以，本周内签约就批", "lead", lead_id)]
    assert notifications(api, "rep1", "en") == [
        ("赵经理 replied to your comment on Follow-up 电话沟通需求: 可以，本周内签约就批", "lead", lead_id)]
    assert len(notifications(api, "boss")) == 1

    status, thread = api.get(path, "boss")
    assert status == 200
    assert [(c["author"], c["parent"], c["body"]) for c in thread["items"]] == [
        (people["rep1"], None, ASK), (people["boss"], asked["id"], "可以，本周内签约就批")]
    assert api.get(path, "rep1") == (200, thread)


def test_a_comment_on_a_record_tells_its_owner_and_a_long_one_is_quoted_short(api, people):
    lead_id = lead(api, "rep1", name="张三")["id"]
    said = "这个客户上周也联系过市场部，" * 5  # 70 characters
    status, _ = api.post(f"/objects/lead/records/{lead_id}/comments", "boss", {"body": said})
    assert status == 201
    assert notifications(api, "rep1") == [("赵经理 评论了你的销售线索「张三」：" + said[:59] + "…", "lead", lead_id)]


def test_who_may_not_read_the_record_may_neither_comment_nor_read_the_thread(api, people):
    lead_id = lead(api, "rep1", name="张三")["id"]
    path = f"/objects/lead/records/{lead_id}/comments"
    refused = (403, {"error": {"code": "forbidden", "message": "your roles do not allow you to read leads"}})
    assert api.get(path, "finance") == refused  # finance has no role on leads
    assert api.post(path, "finance", {"body": "我也看看"}) == refused
    missing = (404, {"error": {"code": "not_found", "message": f"no lead with id {lead_id}"}})
    assert api.get(path, "rep2") == missing  # another rep's lead is outside their scope
    assert api.post(path, "rep2", {"body": "我也看看"}) == missing
    assert api.get(path, "rep1") == (200, {"items": []})
    assert notifications(api, "rep1") == []
    no_thread = (404, {"error": {"code": "not_found", "message": "Product records have no comments"}})
    assert api.get("/objects/product/records/1/comments", "admin") == no_thread


def test_an_empty_body_a_bad_parent_and_mentions_of_who_cannot_see_the_record_are_refused(api, people):
    lead_id = lead(api, "rep1", name="张三")["id"]
    path = f"/objects/lead/records/{lead_id}/comments"
    assert api.post(path, "rep1", {"body": "   "}) == invalid({"body": ["is required"]})
    assert api.post(path, "rep1", {}) == invalid({"body": ["is required"]})
    assert api.post(path, "rep1", {"body": "看看", "parent": "999999"}) == invalid(
        {"parent": ["no comment 999999 on this record"]})
    assert api.post(path, "rep1", {"body": "看看", "title": "x"}) == invalid({"title": ["unknown field"]})
    assert api.post(path, "rep1", {"body": "@李娜 帮我看看 @finance"}) == invalid({"body": [
        "李娜 (@rep2) cannot see this record: share it with them first",
        "钱会计 (@finance) cannot see this record: share it with them first"]})
    assert api.get(path, "rep1") == (200, {"items": []})
    assert notifications(api, "rep2") == []
    # an @name naming nobody stays text; a name followed by more text without a space still names the user
    status, made = api.post(path, "rep1", {"body": "@王五 的电话打不通，@赵经理请帮忙"})
    assert (status, made["mentions"]) == (201, [people["boss"]])
    assert [t for t, _, _ in notifications(api, "boss")] == [
        "王伟 在销售线索「张三」的评论中提到了你：@王五 的电话打不通，@赵经理请帮忙"]


# ------------------------------------------------------------------------------------ pages


def signed_in(app, username: str):
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        csrf = session["csrf_token"]
    client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf})
    with client.session_transaction() as session:  # signing in starts a new session, with a new token
        return client, session["csrf_token"]


def thread_on(page: str) -> list[tuple[str, str, str]]:
    """(depth, author, body) of each comment of the page's thread panel, in order."""
    section = page[page.index('<section class="comments"'):]
    found = re.findall(r'<li class="comment depth-(\d)[^"]*" id="comment-\d+".*?<span class="who">(.*?)</span>.*?'
                       r'<p class="body multiline">(.*?)</p>', section, re.S)
    return [(depth, who, html.unescape(re.sub(r"<[^>]+>", "", body))) for depth, who, body in found]


def test_the_thread_on_the_lead_page(app, api, people):
    lead_id = lead(api, "rep1", name="张三")["id"]
    rep, csrf = signed_in(app, "rep1")
    page = f"/o/lead/{lead_id}"
    empty = rep.post(f"{page}/comments", data={"body": " ", "csrf_token": csrf})
    assert empty.status_code == 422
    assert "必填" in empty.get_data(as_text=True) and thread_on(empty.get_data(as_text=True)) == []
    posted = rep.post(f"{page}/comments", data={"body": "@赵经理 请帮忙看看报价", "csrf_token": csrf})
    assert posted.status_code == 302
    first = re.fullmatch(rf"{page}#comment-(\d+)", posted.headers["Location"]).group(1)
    assert '<span class="mention">@赵经理</span> 请帮忙看看报价' in rep.get(page).get_data(as_text=True)

    boss, boss_csrf = signed_in(app, "boss")
    bell = boss.get("/notifications").get_data(as_text=True)
    assert f'<a href="{page}">王伟 在销售线索「张三」的评论中提到了你：@赵经理 请帮忙看看报价</a>' in bell
    reply = boss.post(f"{page}/comments", data={"body": "已批，按8折报", "parent": first, "csrf_token": boss_csrf})
    assert reply.status_code == 302
    rep.post(f"{page}/comments", data={"body": "收到", "csrf_token": csrf})
    assert thread_on(rep.get(page).get_data(as_text=True)) == [
        ("0", "王伟", "@赵经理 请帮忙看看报价"), ("1", "赵经理", "已批，按8折报"), ("0", "王伟", "收到")]
    assert "赵经理 回复了你在销售线索「张三」的评论：已批，按8折报" in rep.get("/notifications").get_data(as_text=True)
    assert rep.get(f"{page}?lang=en").status_code == 200


def test_a_follow_ups_thread_shows_on_its_leads_timeline_and_a_reply_comes_back_there(app, api, people):
    lead_id = lead(api, "rep1", name="张三")["id"]
    fu = follow_up(api, "rep1", lead_id)
    api.post(f"/objects/follow_up/records/{fu}/comments", "rep1", {"body": ASK})
    boss, csrf = signed_in(app, "boss")
    page = f"/o/lead/{lead_id}"
    timeline = boss.get(page).get_data(as_text=True)
    entry = timeline[timeline.index(f'<li class="entry kind-call" data-id="{fu}">'):]
    assert '<span class="who">王伟</span>' in entry and '<span class="mention">@赵经理</span>' in entry
    assert f'<input type="hidden" name="next" value="{page}">' in entry  # the forms come back to the lead
    feed = boss.get(f"/feed?object=lead&record={lead_id}").get_data(as_text=True)
    assert '<span class="mention">@赵经理</span> 客户要求打8折，能批吗？' in feed
    first = re.search(r'id="comment-(\d+)"', entry).group(1)
    reply = boss.post(f"/o/follow_up/{fu}/comments", data={"body": "可以", "parent": first, "next": page,
                                                           "csrf_token": csrf})
    assert reply.status_code == 302
    assert re.fullmatch(rf"{page}#comment-\d+", reply.headers["Location"])
    assert notifications(api, "rep1")[0] == ("赵经理 回复了你在跟进记录「电话沟通需求」的评论：可以", "lead", lead_id)
