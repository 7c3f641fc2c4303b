"""Each push service's documented contract, for http_server.py --service:
a request is checked as the service checks it, and answered as the
service answers (status, header fields, body), refusals included.

  answer(service, secrets, method, path, headers, body)
      -> (status, [[name, value], ...], body text)

secrets: {"token": ..., "user": ..., "chat_id": ...} as the test gave them.
Sources: ntfy docs.ntfy.sh/publish; Gotify gotify.net/api-docs (POST
/message); Telegram core.telegram.org/bots/api#sendmessage; Discord
discord.com/developers/docs/resources/webhook (execute webhook); Slack
api.slack.com/messaging/webhooks; Pushover pushover.net/api.
"""

import email.header
import json
import re
import urllib.parse

JSON = [["Content-Type", "application/json"]]


def decoded_header(value):
    """An RFC 2047 header value as ntfy decodes it (Go's mime.WordDecoder)."""
    parts = email.header.decode_header(value)
    return "".join(p.decode(c or "utf-8") if isinstance(p, bytes) else p for p, c in parts)


def json_body(headers, body):
    if not headers.get("Content-Type", "").startswith("application/json"):
        return None
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def ntfy(secrets, method, path, headers, body):
    if method not in ("POST", "PUT") or not re.fullmatch(r"/[-_A-Za-z0-9]{1,64}", path):
        return 404, JSON, '{"code":40401,"http":404,"error":"page not found"}'
    if "token" in secrets and headers.get("Authorization") != "Bearer " + secrets["token"]:
        return 401, JSON, '{"code":40101,"http":401,"error":"unauthorized"}'
    priority = headers.get("Priority", "3")
    if priority not in "1 2 3 4 5 min low default high max urgent".split():
        return 400, JSON, '{"code":40007,"http":400,"error":"invalid priority"}'
    if len(body) > 4096:
        # ntfy would make it an attachment: not what a phone should show.
        return 400, JSON, '{"code":41301,"http":413,"error":"message too large"}'
    message = {
        "id": "hwQ2YpKdmg",
        "time": 1764763200,
        "event": "message",
        "topic": path[1:],
        "message": body.decode("utf-8"),
        "priority": int(priority) if priority.isdigit() else priority,
    }
    if "Title" in headers:
        message["title"] = decoded_header(headers["Title"])
    return 200, JSON, json.dumps(message)


def gotify(secrets, method, path, headers, body):
    if method != "POST" or path != "/message":
        return 404, JSON, '{"error":"Not Found","errorCode":404,"errorDescription":"page not found"}'
    if headers.get("X-Gotify-Key") != secrets.get("token"):
        return 401, JSON, ('{"error":"Unauthorized","errorCode":401,"errorDescription":'
                           '"you need to provide a valid access token or user credentials '
                           'to access this api"}')
    message = json_body(headers, body)
    if message is None or not isinstance(message.get("message"), str) or not message["message"]:
        return 400, JSON, ('{"error":"Bad Request","errorCode":400,'
                           '"errorDescription":"Field \'message\' is required"}')
    if not isinstance(message.get("priority", 0), int) or not isinstance(message.get("title", ""), str):
        return 400, JSON, '{"error":"Bad Request","errorCode":400,"errorDescription":"bad field"}'
    return 200, JSON, json.dumps({
        "id": 25, "appid": 1, "message": message["message"], "title": message.get("title", ""),
        "priority": message.get("priority", 0), "date": "2026-12-03T12:00:00Z"})


def telegram(secrets, method, path, headers, body):
    if path != "/bot%s/sendMessage" % secrets.get("token"):
        return 404, JSON, '{"ok":false,"error_code":404,"description":"Not Found"}'
    message = json_body(headers, body) or {}
    bad = lambda d: (400, JSON, json.dumps({"ok": False, "error_code": 400,
                                            "description": "Bad Request: " + d}))
    if str(message.get("chat_id")) != secrets.get("chat_id"):
        return bad("chat not found")
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        return bad("message text is empty")
    # Telegram counts UTF-16 code units.
    if len(text.encode("utf-16-le")) // 2 > 4096:
        return bad("message is too long")
    if not isinstance(message.get("disable_notification", False), bool):
        return bad("bad disable_notification")
    return 200, JSON, json.dumps({"ok": True, "result": {
        "message_id": 7, "date": 1764763200, "text": text,
        "chat": {"id": int(secrets["chat_id"]), "type": "private"}}})


def discord(secrets, method, path, headers, body):
    if method != "POST" or path != "/api/webhooks/%s" % secrets.get("token"):
        return 404, JSON, '{"message": "Unknown Webhook", "code": 10015}'
    message = json_body(headers, body)
    if message is None:
        return 400, JSON, '{"message": "Cannot send an empty message", "code": 50006}'
    content = message.get("content")
    if not isinstance(content, str) or not content:
        return 400, JSON, '{"message": "Cannot send an empty message", "code": 50006}'
    if len(content) > 2000:
        return 400, JSON, ('{"message": "Invalid Form Body", "code": 50035, "errors": '
                           '{"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", '
                           '"message": "Must be 2000 or fewer in length."}]}}}')
    # Without ?wait=true, Discord answers 204 No Content.
    return 204, [], ""


def slack(secrets, method, path, headers, body):
    text_plain = [["Content-Type", "text/plain"]]
    if method != "POST" or path != "/services/%s" % secrets.get("token"):
        return 404, text_plain, "no_service"
    message = json_body(headers, body)
    if message is None:
        return 400, text_plain, "invalid_payload"
    if not isinstance(message.get("text"), str) or not message["text"]:
        return 400, text_plain, "no_text"
    return 200, text_plain, "ok"


def pushover(secrets, method, path, headers, body):
    request = "5f2c9d3e-1b7a-4c41-9a55-2b8d4f0e6a17"
    if method != "POST" or path != "/1/messages.json":
        return 404, JSON, '{"status":0,"errors":["not found"]}'
    if headers.get("Content-Type") != "application/x-www-form-urlencoded":
        return 400, JSON, json.dumps({"status": 0, "request": request,
                                      "errors": ["message cannot be blank"]})
    fields = dict(urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True))
    refuse = lambda key, why: (400, JSON, json.dumps(
        {key: "invalid", "errors": [why], "status": 0, "request": request}))
    if fields.get("token") != secrets.get("token"):
        return refuse("token", "application token is invalid, see https://pushover.net/api")
    if fields.get("user") != secrets.get("user"):
        return refuse("user", "user identifier is not a valid user, group, or subscribed user key")
    message = fields.get("message", "")
    if not message:
        return refuse("message", "message cannot be blank")
    if len(message) > 1024:
        return refuse("message", "message is too long")
    if len(fields.get("title", "")) > 250:
        return refuse("title", "title is too long")
    if fields.get("priority", "0") not in ("-2", "-1", "0", "1"):
        # 2 needs retry and expire.
        return refuse("priority", "priority is invalid")
    return 200, JSON, json.dumps({"status": 1, "request": request})


def webhook(secrets, method, path, headers, body):
    message = json_body(headers, body)
    keys = {"from", "to", "subject", "date", "message_id", "priority", "text"}
    if method != "POST" or message is None or set(message) != keys:
        return 400, JSON, '{"error":"expected from, to, subject, date, message_id, priority, text"}'
    if "token" in secrets and headers.get("Authorization") != "Bearer " + secrets["token"]:
        return 401, JSON, '{"error":"unauthorized"}'
    return 200, JSON, '{"received":true}'


SERVICES = {f.__name__: f for f in (ntfy, gotify, telegram, discord, slack, pushover, webhook)}


def answer(service, secrets, method, path, headers, body):
    return SERVICES[service](secrets, method, path, headers, body)
