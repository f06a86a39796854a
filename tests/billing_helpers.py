"""The billing systems as real programs: localstripe (a process), a server in Chargebee's documented shape, and an
HTTP front that can answer 429 or 503 before passing requests on. Each records the requests it saw."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import stripe

from tests.conftest import STRIPE_SECRET, unavailable
from tests.notify_servers import free_port

CHARGEBEE_FIXTURES = Path(__file__).parent / "fixtures" / "billing" / "chargebee"
STRIPE_KEY = "sk_test_brink_" + uuid.uuid4().hex[:12]
CHARGEBEE_SITE = "brink-test"
CHARGEBEE_KEY = "test_" + uuid.uuid4().hex


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@dataclass
class HttpStandIn:
    """A threaded HTTP server: queued faults first (429, 503), then ``answer``; every request is kept in ``seen``."""

    answer: Callable[[Seen, bytes], tuple[int, dict[str, str], bytes]]
    faults: list[int] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Seen(self.command, parts.path, dict(parse_qsl(parts.query)), dict(self.headers.items()))
                stand_in.seen.append(request)
                if stand_in.faults:
                    status, headers, payload = fault(stand_in.faults.pop(0))
                else:
                    status, headers, payload = stand_in.answer(request, body)
                request.status = status
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its process is stopping)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def requests_to(self, path: str) -> list[Seen]:
        return [request for request in self.seen if request.path == path]


def fault(status: int) -> tuple[int, dict[str, str], bytes]:
    """What a vendor's edge answers when it rate-limits (JSON, as both vendors send) or is down (plain text)."""
    if status == 429:
        body = {
            "error": {"type": "rate_limit_error", "message": "Too many requests"},  # Stripe's shape
            "message": "Sorry, access has been blocked temporarily due to request count exceeding acceptable limits.",
            "api_error_code": "api_request_limit_exceeded",  # Chargebee's shape
            "http_status_code": 429,
        }
        return 429, {"Content-Type": "application/json", "Retry-After": "0"}, json.dumps(body).encode()
    return status, {"Content-Type": "text/plain"}, f"{status} Service Unavailable".encode()


# --- Stripe: localstripe, started as a process, and a front that forwards to it ---------------------------------


@asynccontextmanager
async def localstripe() -> AsyncIterator[str]:
    """A fresh localstripe server (its base URL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    await client.get(f"{url}/v1/customers", auth=(STRIPE_KEY, ""))
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                unavailable("localstripe", RuntimeError(f"it did not answer on port {port}"))
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def forwarding_to(upstream: str) -> Callable[[Seen, bytes], tuple[int, dict[str, str], bytes]]:
    def forward(request: Seen, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        response = httpx.request(
            request.method, upstream + request.path, params=request.query, headers=headers, content=body, timeout=10
        )
        return response.status_code, {"Content-Type": response.headers.get("content-type", "")}, response.content

    return forward


GAP_FIELDS = ("pause_collection", "discounts")  # Update a subscription's parameters localstripe does not know
CLEARED_CANCEL_AT = ("cancel_at", "")  # Stripe clears cancel_at with "": localstripe refuses it


class StripeGaps:
    """Stripe's documented shape for what localstripe lacks, in front of it: ``pause_collection`` (``behavior``,
    ``resumes_at``; ``""`` resumes), ``discounts`` (``[{"coupon": id}]`` on a coupon localstripe holds; ``""``
    clears them) and ``cancel_at=""`` (clears a scheduled cancellation) on Update a subscription, read back (``discounts`` expanded when asked) on Retrieve a subscription.
    Every other request goes to localstripe as it is. Writes honour ``Idempotency-Key`` as Stripe does: the same key
    replays the first answer, with other parameters it is a 400 (localstripe ignores the header)."""

    def __init__(self, upstream: str) -> None:
        self.forward = forwarding_to(upstream)
        self.held: dict[str, dict[str, Any]] = {}  # subscription id -> its pause_collection and discounts
        self.replies: dict[str, tuple[bytes, tuple[int, dict[str, str], bytes]]] = {}

    def answer(self, request: Seen, body: bytes) -> tuple[int, dict[str, str], bytes]:
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key in self.replies:
            sent, reply = self.replies[key]
            if sent != body:
                return stripe_error(400, "Keys for idempotent requests can only be used with the same parameters")
            return reply
        reply = self.subscription_answer(request, body) or self.forward(request, body)
        if request.method == "POST" and key and reply[0] < 300:
            self.replies[key] = (body, reply)
        return reply

    def subscription_answer(self, request: Seen, body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        parts = request.path.split("/")
        if len(parts) != 4 or parts[:3] != ["", "v1", "subscriptions"] or request.method not in ("GET", "POST"):
            return None
        subscription_id = parts[3]
        if request.method == "POST":
            form = parse_qsl(body.decode(), keep_blank_values=True)
            gaps = [(n, v) for n, v in form if n.startswith(GAP_FIELDS) or (n, v) == CLEARED_CANCEL_AT]
            rest = [(n, v) for n, v in form if not n.startswith((*GAP_FIELDS, "expand")) and (n, v) not in gaps]
            if any(name == "cancel_at" and value for name, value in rest):
                self.held.setdefault(subscription_id, {}).pop("cancel_at_cleared", None)
            if gaps:
                refused = self.hold(subscription_id, dict(gaps), request.headers)
                if refused is not None:
                    return refused
            if rest or not gaps:
                written = self.forward(request, urlencode(rest).encode())
                if written[0] >= 300:
                    return written
        read = self.forward(Seen("GET", request.path, {}, request.headers), b"")
        if read[0] >= 300:
            return read
        subscription = json.loads(read[2])
        held = self.held.get(subscription_id, {})
        subscription["pause_collection"] = held.get("pause_collection")
        if held.get("cancel_at_cleared"):
            subscription["cancel_at"] = None
        expanded = any(value == "discounts" for name, value in request.query.items() if name.startswith("expand"))
        discounts = held.get("discounts", [])
        subscription["discounts"] = discounts if expanded else [discount["id"] for discount in discounts]
        return 200, {"Content-Type": "application/json"}, json.dumps(subscription).encode()

    def hold(
        self, subscription_id: str, fields: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        """Keep the gap fields of one update; an error answer when Stripe would refuse them."""
        held = self.held.setdefault(subscription_id, {})
        if fields.get("cancel_at") == "":
            held["cancel_at_cleared"] = True
        if fields.get("pause_collection") == "":
            held["pause_collection"] = None
        elif "pause_collection[behavior]" in fields:
            behavior = fields["pause_collection[behavior]"]
            if behavior not in ("keep_as_draft", "mark_uncollectible", "void"):
                return stripe_error(400, f"Invalid pause_collection[behavior]: {behavior}")
            resumes_at = fields.get("pause_collection[resumes_at]")
            held["pause_collection"] = {"behavior": behavior, "resumes_at": int(resumes_at) if resumes_at else None}
        if fields.get("discounts") == "":
            held["discounts"] = []
        elif "discounts[0][coupon]" in fields:
            coupon_id = fields["discounts[0][coupon]"]
            coupon = self.forward(Seen("GET", f"/v1/coupons/{coupon_id}", {}, headers), b"")
            if coupon[0] != 200:
                return stripe_error(400, f"No such coupon: '{coupon_id}'")
            discount = {
                "id": f"di_{uuid.uuid4().hex[:14]}",
                "object": "discount",
                "source": {"type": "coupon", "coupon": json.loads(coupon[2])},
                "start": int(time.time()),
                "subscription": subscription_id,
            }
            held["discounts"] = [discount]
        return None


def stripe_error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    body = {"error": {"type": "invalid_request_error", "message": message}}
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


@asynccontextmanager
async def stripe_front(upstream: str) -> AsyncIterator[HttpStandIn]:
    """An HTTP front before localstripe, with ``StripeGaps``: ``front.faults`` makes it answer 429 or 503 instead."""
    front = HttpStandIn(answer=StripeGaps(upstream).answer)
    front.start()
    try:
        yield front
    finally:
        front.stop()


class StripeAccount:
    """Customers and subscriptions made on localstripe through the official library."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = stripe.HTTPXClient(timeout=10)
        self.client = stripe.StripeClient(
            STRIPE_KEY, base_addresses={"api": url}, http_client=self._http, max_network_retries=0
        )
        self._plan: str | None = None

    async def plan(self) -> str:
        if self._plan is None:
            product = await self.client.v1.products.create_async(params={"name": "Team"})
            plan = await self.client.v1.plans.create_async(
                params={
                    "id": f"team-{uuid.uuid4().hex[:8]}",
                    "amount": 4900,
                    "currency": "usd",
                    "interval": "month",
                    "product": product.id,
                }
            )
            self._plan = plan.id
        return self._plan

    async def subscription(self, *, quantity: int = 3) -> tuple[str, str]:
        """A paying customer's new subscription: (customer id, subscription id)."""
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
        token = await self.client.v1.tokens.create_async(params={"card": card})  # type: ignore[typeddict-item]
        customer = await self.client.v1.customers.create_async(
            params={"email": f"{uuid.uuid4().hex[:8]}@example.com", "source": token.id}
        )
        subscription = await self.client.v1.subscriptions.create_async(
            params={"customer": customer.id, "items": [{"plan": await self.plan(), "quantity": quantity}]}  # type: ignore[typeddict-unknown-key]
        )
        return customer.id, subscription.id

    async def cancel(self, subscription_id: str) -> None:
        await self.client.v1.subscriptions.cancel_async(subscription_id)

    async def deliver_webhooks_to(self, url: str, *, secret: str = STRIPE_SECRET) -> None:
        """From now on localstripe posts signed ``customer.subscription.deleted`` webhooks to ``url``."""
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.url}/_config/webhooks/brink",
                json={"url": url, "secret": secret, "events": ["customer.subscription.deleted"]},
            )
            response.raise_for_status()

    async def close(self) -> None:
        await self._http.close_async()


# --- Chargebee: a server in the documented shape of its API ---------------------------------------------------


class FakeChargebee:
    """Chargebee's List Events (``GET /api/v2/events``: ``occurred_at[after]``, ``event_type[in]``, ``sort_by``,
    ``limit``/``offset``, answered as ``{"list": [{"event": …}], "next_offset": …}``), HTTP basic auth with the API key,
    and ``POST /api/v2/subscriptions/{id}`` honouring ``chargebee-idempotency-key``. On the subscriptions it holds:
    Retrieve a Subscription, and the actions offers send (Product Catalog 2.0), each refusing a subscription in the
    wrong state as Chargebee does (400 ``invalid_state_for_request``): Remove Scheduled Cancellation, Cancel
    Subscription for Items (``end_of_term``), Reactivate, Change Term End (``term_ends_at``), Pause (``immediately``,
    ``resume_date``), Resume (``immediately``), Update Subscription for Items (``coupon_ids``, ``subscription_items``:
    the plan's item price swapped) and Remove Coupons; Create a Coupon for Items, Retrieve a Coupon and Retrieve an Item
    Price. Every
    write replays its first answer for a repeated idempotency key."""

    def __init__(self, api_key: str = CHARGEBEE_KEY) -> None:
        self.api_key = api_key
        self.events: list[dict[str, Any]] = []
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.coupons: dict[str, dict[str, Any]] = {}
        self.item_prices: dict[str, dict[str, Any]] = {}
        self.writes: dict[str, dict[str, Any]] = {}  # idempotency key -> answer
        self.stand_in = HttpStandIn(answer=self.answer)

    @property
    def url(self) -> str:
        return self.stand_in.url

    def cancel(self, *, scheduled: bool = False, occurred_at: int | None = None) -> dict[str, Any]:
        """A subscription cancelled now (or scheduled to end): the event Chargebee records for it."""
        name = "subscription_cancellation_scheduled" if scheduled else "subscription_cancelled"
        return self.record(name, occurred_at=occurred_at)

    def record(self, name: str, *, occurred_at: int | None = None) -> dict[str, Any]:
        event = copy.deepcopy(json.loads((CHARGEBEE_FIXTURES / f"{name}.json").read_text()))
        now = occurred_at or int(time.time())
        subscription, customer = event["content"]["subscription"], event["content"]["customer"]
        subscription["id"] = f"Az{uuid.uuid4().hex[:14]}"
        subscription["customer_id"] = customer["id"] = f"16C{uuid.uuid4().hex[:13]}"
        subscription["resource_version"] = now * 1000 + len(self.events)
        subscription["updated_at"] = now
        if name == "subscription_cancelled":
            subscription["cancelled_at"] = now
        event.update(id=f"ev_{uuid.uuid4().hex[:16]}", occurred_at=now)
        self.events.append(event)
        return event

    def item_price(self, item_price_id: str, *, price: int, period_unit: str = "month") -> dict[str, Any]:
        """An item price of a plan, as Retrieve an Item Price shows it."""
        self.item_prices[item_price_id] = {
            "id": item_price_id,
            "object": "item_price",
            "item_type": "plan",
            "price": price,
            "period": 1,
            "period_unit": period_unit,
            "currency_code": "USD",
            "status": "active",
        }
        return self.item_prices[item_price_id]

    def subscription(self, status: str = "active", *, quantity: int = 3) -> dict[str, Any]:
        """A subscription of ``quantity`` seats on the team plan (4,900 a month each), as Retrieve a Subscription shows
        it: ``active``, ``non_renewing`` (its cancellation scheduled for the end of its term) or ``cancelled``."""
        now = int(time.time())
        plan = self.item_prices.get("team-USD-monthly") or self.item_price("team-USD-monthly", price=4900)
        subscription = {
            "id": f"Az{uuid.uuid4().hex[:14]}",
            "object": "subscription",
            "customer_id": f"16C{uuid.uuid4().hex[:13]}",
            "status": status,
            "current_term_start": now,
            "current_term_end": now + 30 * 86_400,
            "currency_code": "USD",
            "resource_version": now * 1000,
            "subscription_items": [
                {"item_price_id": plan["id"], "item_type": "plan", "quantity": quantity, "unit_price": plan["price"]}
            ],
        }
        if status == "non_renewing":
            subscription["cancelled_at"] = subscription["current_term_end"]
        if status == "cancelled":
            subscription["cancelled_at"] = now - 86_400
        self.subscriptions[subscription["id"]] = subscription
        return subscription

    def non_renewing(self) -> dict[str, Any]:
        """A subscription whose cancellation is scheduled for the end of its term."""
        return self.subscription("non_renewing")

    def subscription_answer(self, subscription: dict[str, Any]) -> bytes:
        customer = {"id": subscription["customer_id"], "object": "customer"}
        return json.dumps({"subscription": subscription, "customer": customer}).encode()

    def answer(self, request: Seen, body: bytes) -> tuple[int, dict[str, str], bytes]:
        expected = "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            error = {
                "message": "Sorry, authentication failed. Invalid api key",
                "type": "invalid_request",
                "api_error_code": "api_authentication_failed",
                "error_code": "api_authentication_invalid_key",
                "http_status_code": 401,
            }
            return 401, {"Content-Type": "application/json"}, json.dumps(error).encode()
        if request.method == "GET" and request.path == "/api/v2/events":
            return 200, {"Content-Type": "application/json"}, json.dumps(self.list_events(request.query)).encode()
        key = request.headers.get("chargebee-idempotency-key")
        if request.method == "POST" and key and key in self.writes:
            replayed = {"Content-Type": "application/json", "chargebee-idempotency-replayed": "true"}
            return 200, replayed, json.dumps(self.writes[key]).encode()
        status, answer = self.route(request, dict(parse_qsl(body.decode(), keep_blank_values=True)))
        if request.method == "POST" and key and status == 200:
            self.writes[key] = answer
        return status, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def route(self, request: Seen, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = request.path.split("/")[3:]  # after /api/v2
        if request.method == "GET" and parts[:1] == ["item_prices"] and parts[1:2] and parts[1] in self.item_prices:
            return 200, {"item_price": self.item_prices[parts[1]]}
        if request.method == "GET" and parts[:1] == ["coupons"] and parts[1:2] and parts[1] in self.coupons:
            return 200, {"coupon": self.coupons[parts[1]]}
        if request.method == "POST" and parts == ["coupons", "create_for_items"]:
            return self.create_coupon(form)
        held = self.subscriptions.get(parts[1]) if parts[:1] == ["subscriptions"] and len(parts) > 1 else None
        if held is not None and request.method == "GET":
            return 200, json.loads(self.subscription_answer(held))
        if held is not None and request.method == "POST" and len(parts) == 3:
            action = getattr(self, f"subscription_{parts[2]}", None)
            if action is None:
                return chargebee_error(404, "resource_not_found", f"no action {parts[2]}")
            refusal = action(held, form)
            if refusal is not None:
                return chargebee_error(400, "invalid_state_for_request", refusal)
            held["resource_version"] += 1
            return 200, json.loads(self.subscription_answer(held))
        if request.method == "POST" and parts[:1] == ["subscriptions"] and len(parts) == 2:
            return self.update_subscription(parts[1], form)
        return chargebee_error(404, "resource_not_found", "Sorry, we couldn't find that resource")

    def create_coupon(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("id") in self.coupons:
            return chargebee_error(400, "duplicate_entry", f"The value {form['id']} is already present.")
        if form.get("duration_type") == "limited_period" and not form.get("period"):
            return chargebee_error(400, "param_wrong_value", "period : cannot be blank")
        coupon = {"object": "coupon", "status": "active", **form}
        for name in ("discount_percentage", "period"):
            if name in coupon:
                coupon[name] = float(coupon[name]) if name == "discount_percentage" else int(coupon[name])
        self.coupons[form["id"]] = coupon
        return 200, {"coupon": coupon}

    def subscription_remove_scheduled_cancellation(self, held: dict[str, Any], form: dict[str, str]) -> str | None:
        if held["status"] != "non_renewing":
            return "The subscription does not have a scheduled cancellation."
        held["status"] = "active"
        held.pop("cancelled_at", None)
        return None

    def subscription_cancel_for_items(self, held: dict[str, Any], form: dict[str, str]) -> str | None:
        if held["status"] not in ("active", "in_trial") or form.get("end_of_term") != "true":
            return "Only an active subscription can be cancelled at the end of its term here."
        held.update(status="non_renewing", cancelled_at=held["current_term_end"])
        return None

    def subscription_reactivate(self, held: dict[str, Any], form: dict[str, str]) -> str | None:
        if held["status"] != "cancelled":
            return "Only a cancelled subscription can be reactivated."
        now = int(time.time())
        held.update(status="active", current_term_start=now, current_term_end=now + 30 * 86_400)
        held.pop("cancelled_at", None)
        return None

    def subscription_change_term_end(self, held: dict[str, Any], form: dict[str, str]) -> str | None:
        term_ends_at = int(form.get("term_ends_at") or 0)
        if held["status"] not in ("active", "in_trial", "non_renewing") or term_ends_at <= time.time():
            return "term_ends_at : should be a future date, on a subscription that is running."
        held["current_term_end"] = term_ends_at
        return None

    def subscription_pause(self, held: dict[str, Any], form: dict[str, str]) -> str | None:
        if held["status"] != "active" or form.get("pause_option") != "immediately":
            return "Only an active subscription can be paused immediately."
        held.update(status="paused", pause_date=int(time.time()), resume_date=int(form["resume_date"]))
        return None

    def subscription_resume(self, held: dict[str, Any], form: dict[str, str]) -> str | None:
        if held["status"] != "paused" or form.get("resume_option") != "immediately":
            return "Only a paused subscription can be resumed immediately."
        held["status"] = "active"
        held.pop("pause_date", None)
        held.pop("resume_date", None)
        return None

    def subscription_update_for_items(self, held: dict[str, Any], form: dict[str, str]) -> str | None:
        coupons = [value for name, value in form.items() if name.startswith("coupon_ids[")]
        if any(coupon not in self.coupons for coupon in coupons):
            return f"coupon_ids : {coupons} not found"
        held.setdefault("coupons", []).extend({"coupon_id": coupon, "applied_count": 0} for coupon in coupons)
        item_price_id = form.get("subscription_items[item_price_id][0]")
        if item_price_id is not None:
            price = self.item_prices.get(item_price_id)
            if price is None:
                return f"subscription_items[item_price_id][0] : {item_price_id} not found"
            plan = next(item for item in held["subscription_items"] if item["item_type"] == "plan")
            quantity = int(form.get("subscription_items[quantity][0]") or plan["quantity"])
            plan.update(item_price_id=item_price_id, quantity=quantity, unit_price=price["price"])
        return None

    def subscription_remove_coupons(self, held: dict[str, Any], form: dict[str, str]) -> str | None:
        removed = {value for name, value in form.items() if name.startswith("coupon_ids[")}
        held["coupons"] = [coupon for coupon in held.get("coupons", []) if coupon["coupon_id"] not in removed]
        return None

    def list_events(self, query: dict[str, str]) -> dict[str, Any]:
        after = int(query.get("occurred_at[after]", "0"))
        wanted = query.get("event_type[in]")
        types = set(json.loads(wanted.replace("'", '"'))) if wanted else None
        chosen = [e for e in self.events if e["occurred_at"] > after and (types is None or e["event_type"] in types)]
        chosen.sort(key=lambda e: e["occurred_at"], reverse=query.get("sort_by[asc]") != "occurred_at")
        start, limit = int(query.get("offset") or 0), int(query.get("limit", "10"))
        page = chosen[start : start + limit]
        answer: dict[str, Any] = {"list": [{"event": event} for event in page]}
        if start + limit < len(chosen):
            answer["next_offset"] = str(start + limit)
        return answer

    def update_subscription(self, subscription_id: str, changes: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Update a Subscription on one it does not hold: the changes echoed back."""
        return 200, {
            "subscription": {"id": subscription_id, "object": "subscription", **changes},
            "customer": {"id": f"cus_of_{subscription_id}", "object": "customer"},
        }


def chargebee_error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    """An error in Chargebee's shape."""
    return status, {"message": message, "type": "invalid_request", "api_error_code": code, "http_status_code": status}


@asynccontextmanager
async def fake_chargebee() -> AsyncIterator[FakeChargebee]:
    server = FakeChargebee()
    server.stand_in.start()
    try:
        yield server
    finally:
        server.stand_in.stop()


# --- Intake served on a real port, so the billing systems can post webhooks to it -------------------------------


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs on a local port; its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
