"""The pages' own words in Chinese and English: one catalogue, Chinese by default.

Object, field and option labels come from the metadata; everything else a page says is here, under a
key, in both languages (a test checks that every key has both). Runtime messages arrive in English
(`runtime` speaks the API's language); `error_text` renders the ones a form shows in the page's language.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import session

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

CATALOGUE: dict[str, dict[str, str]] = {
    "app.name": {"zh": "对象平台 CRM", "en": "ObjectPlatform CRM"},
    "lang.switch": {"zh": "English", "en": "中文"},
    "nav.home": {"zh": "首页", "en": "Home"},
    "nav.admin_metadata": {"zh": "元数据", "en": "Metadata"},
    "nav.skip": {"zh": "跳到正文", "en": "Skip to content"},
    "login.title": {"zh": "登录", "en": "Sign in"},
    "login.username": {"zh": "用户名", "en": "Username"},
    "login.password": {"zh": "密码", "en": "Password"},
    "login.submit": {"zh": "登录", "en": "Sign in"},
    "login.failed": {"zh": "用户名或密码错误，或账号已停用",
                     "en": "Wrong username or password, or the account is inactive"},
    "login.required": {"zh": "请先登录", "en": "Please sign in first"},
    "logout": {"zh": "退出", "en": "Sign out"},
    "home.title": {"zh": "欢迎，{name}", "en": "Welcome, {name}"},
    "home.objects": {"zh": "您可以访问的对象", "en": "Objects you can open"},
    "list.new": {"zh": "新建{object}", "en": "New {object}"},
    "list.search": {"zh": "搜索", "en": "Search"},
    "list.search_placeholder": {"zh": "输入关键词", "en": "Keywords"},
    "list.filter": {"zh": "筛选", "en": "Filter"},
    "list.clear": {"zh": "清除条件", "en": "Clear"},
    "list.any": {"zh": "全部", "en": "Any"},
    "list.from": {"zh": "从", "en": "From"},
    "list.to": {"zh": "至", "en": "To"},
    "list.total": {"zh": "共 {total} 条", "en": "{total} records"},
    "list.page": {"zh": "第 {page} 页", "en": "Page {page}"},
    "list.next": {"zh": "下一页", "en": "Next"},
    "list.prev": {"zh": "上一页", "en": "Previous"},
    "list.first": {"zh": "第一页", "en": "First page"},
    "list.empty": {"zh": "没有符合条件的记录", "en": "No records match"},
    "list.select_all": {"zh": "全选", "en": "Select all"},
    "list.select": {"zh": "选择", "en": "Select"},
    "list.bulk": {"zh": "批量操作", "en": "Bulk action"},
    "list.bulk_run": {"zh": "执行", "en": "Run"},
    "list.view_all": {"zh": "查看全部", "en": "View all"},
    "list.export": {"zh": "导出 CSV", "en": "Export CSV"},
    "record.details": {"zh": "详情", "en": "Details"},
    "record.history": {"zh": "历史记录", "en": "History"},
    "record.edit": {"zh": "编辑", "en": "Edit"},
    "record.delete": {"zh": "删除", "en": "Delete"},
    "record.delete_confirm": {"zh": "确定删除这条记录吗？", "en": "Delete this record?"},
    "record.deleted": {"zh": "已删除", "en": "Deleted"},
    "record.other": {"zh": "其他信息", "en": "Other"},
    "record.no_related": {"zh": "暂无记录", "en": "None yet"},
    "record.saved": {"zh": "已保存", "en": "Saved"},
    "record.created": {"zh": "已创建", "en": "Created"},
    "history.at": {"zh": "时间", "en": "When"},
    "history.user": {"zh": "操作人", "en": "By"},
    "history.change": {"zh": "变更", "en": "Change"},
    "history.field": {"zh": "字段", "en": "Field"},
    "history.old": {"zh": "原值", "en": "Old value"},
    "history.new": {"zh": "新值", "en": "New value"},
    "history.empty": {"zh": "暂无历史记录", "en": "No history yet"},
    "change.create": {"zh": "创建", "en": "Created"},
    "change.update": {"zh": "修改", "en": "Changed"},
    "change.delete": {"zh": "删除", "en": "Deleted"},
    "change.handover": {"zh": "交接", "en": "Handed over"},
    "field.id": {"zh": "编号", "en": "ID"},
    "field.owner": {"zh": "负责人", "en": "Owner"},
    "field.created_by": {"zh": "创建人", "en": "Created by"},
    "field.created_at": {"zh": "创建时间", "en": "Created at"},
    "field.updated_by": {"zh": "修改人", "en": "Updated by"},
    "field.updated_at": {"zh": "修改时间", "en": "Updated at"},
    "field.version": {"zh": "版本", "en": "Version"},
    "value.yes": {"zh": "是", "en": "Yes"},
    "value.no": {"zh": "否", "en": "No"},
    "value.separator": {"zh": "、", "en": ", "},
    "form.new": {"zh": "新建{object}", "en": "New {object}"},
    "form.edit": {"zh": "编辑{object}：{title}", "en": "Edit {object}: {title}"},
    "form.save": {"zh": "保存", "en": "Save"},
    "form.cancel": {"zh": "取消", "en": "Cancel"},
    "form.required": {"zh": "必填", "en": "required"},
    "form.errors": {"zh": "请修正下面标出的 {count} 处错误", "en": "Please correct the {count} errors marked below"},
    "form.lookup_placeholder": {"zh": "输入名称搜索", "en": "Type to search"},
    "form.lookup_none": {"zh": "没有匹配的记录", "en": "No matching records"},
    "form.latitude": {"zh": "纬度", "en": "Latitude"},
    "form.longitude": {"zh": "经度", "en": "Longitude"},
    "form.choose": {"zh": "请选择", "en": "Choose"},
    "form.password_keep": {"zh": "留空则不修改", "en": "Leave empty to keep it"},
    "form.add_line": {"zh": "添加一行", "en": "Add a line"},
    "form.remove_line": {"zh": "删除此行", "en": "Remove this line"},
    "form.live_note": {"zh": "小计与合计为预估，保存时由系统重新计算",
                       "en": "Subtotals and the total are estimates; the system recomputes them on save"},
    "conflict.title": {"zh": "记录已被他人修改", "en": "Someone else changed this record"},
    "conflict.message": {"zh": "{user} 于 {at} 修改了这条记录（当前版本 {version}）。"
                               "您的输入仍保留在下方；请重新加载后再修改。",
                         "en": "{user} changed this record at {at} (now version {version}). Your input is kept below; "
                               "reload the record and make your change again."},
    "conflict.reload": {"zh": "重新加载最新版本", "en": "Reload the latest version"},
    "action.params": {"zh": "{action}：填写参数", "en": "{action}: parameters"},
    "action.run": {"zh": "执行", "en": "Run"},
    "action.done": {"zh": "{action}：已完成", "en": "{action}: done"},
    "action.bulk_done": {"zh": "{action}：成功 {ok} 条，失败 {failed} 条",
                         "en": "{action}: {ok} succeeded, {failed} failed"},
    "action.bulk_failure": {"zh": "记录 {id}：{message}", "en": "Record {id}: {message}"},
    "action.none_selected": {"zh": "请先选择记录", "en": "Select some records first"},
    "action.records": {"zh": "已选择 {count} 条记录", "en": "{count} records selected"},
    "error.title": {"zh": "出错了", "en": "Something went wrong"},
    "error.400": {"zh": "请求无效", "en": "Bad request"},
    "error.403": {"zh": "没有权限", "en": "Not allowed"},
    "error.404": {"zh": "找不到页面或记录", "en": "Page or record not found"},
    "error.404_detail": {"zh": "该记录不存在，或您无权查看。", "en": "It does not exist, or you may not see it."},
    "error.csrf": {"zh": "表单已过期或来源不明，请返回后刷新页面再提交。",
                   "en": "The form expired or did not come from this site; go back, reload the page and submit again."},
    "error.back_home": {"zh": "返回首页", "en": "Back to the home page"},
    "meta.title": {"zh": "元数据浏览", "en": "Metadata browser"},
    "meta.objects": {"zh": "对象", "en": "Objects"},
    "meta.picklists": {"zh": "选项列表", "en": "Picklists"},
    "meta.flows": {"zh": "流程与规则", "en": "Flows and rules"},
    "meta.reports": {"zh": "报表", "en": "Reports"},
    "meta.roles": {"zh": "角色", "en": "Roles"},
    "meta.name": {"zh": "名称", "en": "Name"},
    "meta.label": {"zh": "标签", "en": "Label"},
    "meta.type": {"zh": "类型", "en": "Type"},
    "meta.kind": {"zh": "种类", "en": "Kind"},
    "meta.object": {"zh": "对象", "en": "Object"},
    "meta.details": {"zh": "说明", "en": "Details"},
    "meta.source": {"zh": "定义位置", "en": "Source"},
    "meta.options": {"zh": "选项", "en": "Options"},
    "meta.inactive": {"zh": "停用", "en": "inactive"},
    "meta.required": {"zh": "必填", "en": "required"},
    "meta.unique": {"zh": "唯一", "en": "unique"},
    "meta.read_only": {"zh": "只读", "en": "read-only"},
    "meta.none": {"zh": "暂无", "en": "None"},
    "meta.rules": {"zh": "校验规则", "en": "Validation rules"},
}

# The runtime's field messages (English) and their Chinese; `{name}` parts are kept from the message.
_ERRORS: list[tuple[str, str]] = [
    (r"is required", "必填"),
    (r"not a valid phone number", "电话号码格式不正确"),
    (r"not a valid email address", "邮箱格式不正确"),
    (r"not a valid URL \(use http:// or https://\)", "网址格式不正确（请以 http:// 或 https:// 开头）"),
    (r"must be at most (?P<max>\S+) characters", "最多 {max} 个字符"),
    (r"must be between (?P<min>\S+) and (?P<max>\S+) characters", "长度须在 {min} 到 {max} 个字符之间"),
    (r"must be between (?P<min>\S+) and (?P<max>\S+)", "必须在 {min} 到 {max} 之间"),
    (r"must be at least (?P<min>\S+)", "不能小于 {min}"),
    (r"must be at most (?P<max>\S+)", "不能大于 {max}"),
    (r"must be a number", "必须是数字"),
    (r"must be a whole number", "必须是整数"),
    (r"must have at most (?P<n>\d+) digits.*", "数字位数过多"),
    (r"must be true or false", "必须是“是”或“否”"),
    (r"not a valid date \(use YYYY-MM-DD\)", "日期格式不正确（YYYY-MM-DD）"),
    (r"not a valid date and time.*", "日期时间格式不正确"),
    (r"'(?P<input>.*)' is not one of: .*", "“{input}”不是有效的选项"),
    (r"must be a record id.*", "请从列表中选择一条记录"),
    (r"no (?P<object>\w+) with id (?P<id>\d+).*", "找不到所选的记录"),
    (r"already used by another (?P<object>\w+)", "已被其他记录使用"),
    (r"is read-only", "只读，不能修改"),
    (r'must be \{"lat": \.\.\., "lng": \.\.\.\} or "lat,lng"', "请填写纬度和经度（数字）"),
    (r"latitude must be between -90 and 90", "纬度必须在 -90 到 90 之间"),
    (r"longitude must be between -180 and 180", "经度必须在 -180 到 180 之间"),
    (r"unknown parameter", "未知参数"),
    (r"required", "必填"),
    (r"must be another user than the one deactivated", "不能交接给被停用的用户本人"),
    (r"is inactive: hand over to an active user", "该用户已停用，请交接给在职用户"),
]
_ERROR_PATTERNS = [(re.compile(pattern), zh) for pattern, zh in _ERRORS]


def language() -> str:
    """The signed-in (or anonymous) visitor's language, from the session; Chinese by default."""
    lang = session.get("lang")
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def text(key: str, lang: str | None = None, **values) -> str:
    """The catalogue's text for `key` in `lang` (default: the session's), with `{name}` parts filled."""
    words = CATALOGUE[key][lang or language()]
    return words.format(**values) if values else words


def error_text(message: str, lang: str, rule_messages: dict[str, str] | None = None) -> str:
    """A runtime field message in `lang`: validation rules by their own labels, known messages from the list."""
    if lang == "en":
        return message
    if rule_messages and message in rule_messages:
        return rule_messages[message]
    for pattern, zh in _ERROR_PATTERNS:
        if m := pattern.fullmatch(message):
            return zh.format(**m.groupdict())
    return message


def translator(lang: str) -> Callable[..., str]:
    """`_` for templates: `_("list.total", total=3)`."""
    return lambda key, **values: text(key, lang, **values)
