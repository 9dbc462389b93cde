"""Deterministic demo data for the fictitious city of 泉阳市, and the accounts worth calling."""

from __future__ import annotations

import logging
import random
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cti.db.agents import PASSWORD_HASHER
from cti.db.ivr_queries import (
    WORK_ORDER_TZ,
    accounts_for_phone,
    bill_info,
    outages_for_account,
)
from cti.db.models import (
    Account,
    AccountPhone,
    Agent,
    Area,
    Bill,
    Customer,
    Feeder,
    Outage,
    OutageArea,
    Payment,
)
from cti.db.staff import ensure_shipped_skills

logger = logging.getLogger(__name__)

LOCAL_TZ = WORK_ORDER_TZ
CITY = "泉阳市"
BILL_MONTHS = 6
ARREARS_SHARE = 0.15
# Enough for the important customers plus one account on every feeder, so every demo purpose
# (fault area, planned area, arrears, ...) has a candidate whatever the sample size.
MIN_ACCOUNTS = 50
# Demo only: every demo agent and supervisor logs in with this password. A real center creates
# its staff with cti.db.agents.create_agent and their own passwords.
DEMO_PASSWORD = "95598"
DEMO_AGENTS = 50       # A001..A050, one per 95598 seat
# the departments' demo users: a repair crew (抢修班), marketing (营销) and metering (计量)
DEMO_DEPARTMENT_USERS = (("R01", "抢修一班", "repair"), ("M01", "营销班", "marketing"),
                         ("J01", "计量班", "metering"))
DEMO_SUPERVISORS = 5   # S01..S05

DEMO_PURPOSES: tuple[str, ...] = (
    "outage_fault",             # exactly one fault outage at the account
    "outage_planned",           # in a planned outage right now
    "outage_planned_upcoming",  # a planned outage starts within 7 days
    "bill_arrears",             # overdue amount, no outage
    "bill_paid_up",             # nothing due, no outage
    "no_outage",                # plain account, no outage
    "important_customer",       # 重要客户 (hospital)
    "phone_multiple_accounts",  # the caller's phone maps to several accounts
    "unknown_account",          # a 10-digit number that does not exist
)


@dataclass(frozen=True, slots=True)
class _AreaSpec:
    code: str
    name: str
    kind: str
    district: str
    places: tuple[str, ...]   # streets in town, townships (镇/街道) in the country
    feeders: tuple[str, ...]


AREAS: tuple[_AreaSpec, ...] = (
    _AreaSpec("QY01", "历下城区", "urban", "历下区",
              ("泉城路", "解放路", "文化东路", "历山路", "山大路"), ("泉城", "文化", "历山")),
    _AreaSpec("QY02", "市中城区", "urban", "市中区",
              ("经四路", "经七路", "英雄山路", "万寿路", "纬二路"), ("经七", "英雄山", "万寿")),
    _AreaSpec("QY03", "槐荫城区", "urban", "槐荫区",
              ("经十路", "张庄路", "西市场大街", "纬十二路"), ("张庄", "西市场", "兴福")),
    _AreaSpec("QY04", "天桥城区", "urban", "天桥区",
              ("北园大街", "无影山路", "堤口路", "标山路"), ("北园", "无影山", "堤口")),
    _AreaSpec("QY05", "高新城区", "urban", "高新区",
              ("舜华路", "新泺大街", "工业南路", "颖秀路"), ("舜华", "新泺", "颖秀", "汉峪")),
    _AreaSpec("QY06", "历城农村", "rural", "历城区",
              ("唐王镇", "董家街道", "遥墙街道", "彩石街道"), ("唐王", "董家", "遥墙")),
    _AreaSpec("QY07", "长清农村", "rural", "长清区",
              ("归德街道", "孝里街道", "马山镇", "万德街道"), ("归德", "孝里", "马山")),
    _AreaSpec("QY08", "章丘农村", "rural", "章丘区",
              ("相公庄街道", "白云湖街道", "官庄街道", "垛庄镇"), ("相公", "白云", "官庄")),
    _AreaSpec("QY09", "济阳农村", "rural", "济阳区",
              ("崔寨街道", "太平街道", "曲堤街道", "仁风镇"), ("崔寨", "太平", "曲堤")),
    _AreaSpec("QY10", "平阴农村", "rural", "平阴县",
              ("东阿镇", "孝直镇", "孔村镇", "洪范池镇"), ("东阿", "孝直", "洪范")),
    _AreaSpec("QY11", "南部山区", "remote", "南部山区",
              ("柳埠街道", "西营街道", "仲宫街道"), ("柳埠", "西营", "仲宫")),
    _AreaSpec("QY12", "黄河滩区", "remote", "商河县",
              ("玉皇庙镇", "沙河镇", "怀仁镇"), ("玉皇", "沙河")),
)
# Share of accounts per area kind; most customers live in town.
_KIND_WEIGHT = {"urban": 0.60 / 5, "rural": 0.32 / 5, "remote": 0.08 / 2}

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余"
            "杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史")
GIVEN_CHARS = ("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚华飞玉兰英红梅鹏辉斌波宇浩凯"
               "健俊帆旭宁琳雪颖倩婷慧建国志海峰云龙秀桂凤淑珍文德福庆春秋晨欣佳怡子涵梓萱")
SHOP_KINDS = ("餐馆", "超市", "理发店", "水果店", "五金店", "早餐店", "药店", "干洗店", "便利店")
VILLAGE_HEADS = ("东", "西", "南", "北", "前", "后", "大", "小", "上", "下")
VILLAGE_CORES = ("王", "李", "张", "刘", "杨", "赵", "孙", "柳", "杏", "石", "河", "桥", "枣",
                 "杨家")
VILLAGE_TAILS = ("庄", "村", "家庄", "峪", "店", "洼")
MOBILE_PREFIXES = tuple(f"13{d}" for d in range(10)) + (
    "150", "151", "152", "153", "155", "156", "157", "158", "159") + tuple(
    f"18{d}" for d in range(10))
# 微信, 支付宝, 网上国网 app, 银行代扣, 营业厅
PAYMENT_CHANNELS = ("wechat", "alipay", "app", "bank", "counter")
PAYMENT_CHANNEL_WEIGHTS = (35, 30, 20, 10, 5)
# Residential stepped tariff (阶梯电价), monthly approximation: yuan per kWh above each step.
RESIDENTIAL_STEPS = ((0, Decimal("0.5469")), (210, Decimal("0.5969")), (400, Decimal("0.8469")))
COMMERCIAL_RATE = Decimal("0.7326")
# July/August air conditioning, December-February heating.
SEASON = {1: 1.3, 2: 1.2, 3: 1.0, 4: 0.85, 5: 0.9, 6: 1.15, 7: 1.5, 8: 1.55, 9: 1.1, 10: 0.85,
          11: 0.95, 12: 1.2}


@dataclass(frozen=True, slots=True)
class _Important:
    name: str
    kind: str
    area: str
    feeder: int       # index into the area's feeders
    address: str
    transformer_area: str
    monthly_kwh: int


# The hospital has two accounts on two feeders (dual supply, 双电源), as hospitals must.
IMPORTANT: tuple[tuple[_Important, ...], ...] = (
    (_Important(f"{CITY}第一人民医院", "hospital", "QY01", 1, "历下区文化东路16号",
                "第一人民医院1号专变", 86_000),
     _Important(f"{CITY}第一人民医院", "hospital", "QY01", 2, "历下区文化东路16号（备用电源）",
                "第一人民医院2号专变", 9_000)),
    (_Important(f"{CITY}中医医院", "hospital", "QY03", 1, "槐荫区张庄路88号",
                "中医医院专变", 41_000),),
    (_Important(f"{CITY}人民政府", "government", "QY02", 0, "市中区经七路1号",
                "市政府专变", 23_000),),
    # Home oxygen concentrator; her feeder has the planned outage in 3 days, which she must hear.
    (_Important("赵桂兰", "life_support", "QY06", 0, "历城区唐王镇西王庄17号",
                "西王庄1号台区", 260),),
)


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _residential_amount(kwh: int) -> Decimal:
    total = Decimal(0)
    bounds = [step for step, _ in RESIDENTIAL_STEPS[1:]] + [None]
    for (start, rate), end in zip(RESIDENTIAL_STEPS, bounds, strict=True):
        if kwh <= start:
            break
        upper = kwh if end is None else min(kwh, end)
        total += (upper - start) * rate
    return _money(total)


def _months_back(today: date, n: int) -> list[date]:
    """First days of the n full months before today's month, oldest first."""
    first = today.replace(day=1)
    months = []
    for _ in range(n):
        first = (first - timedelta(days=1)).replace(day=1)
        months.append(first)
    return months[::-1]


def _next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def _local(d: date, t: time = time(0, 0)) -> datetime:
    return datetime.combine(d, t, tzinfo=LOCAL_TZ)


class _Generator:
    """Produces the rows; all randomness is drawn here, in a fixed order, from one seeded rng."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.today = now.astimezone(LOCAL_TZ).date()
        self.months = _months_back(self.today, BILL_MONTHS)
        self.phones_used: set[str] = set()
        self.villages = {
            (spec.code, place): self._villages() for spec in AREAS if spec.kind != "urban"
            for place in spec.places
        }

    def _villages(self) -> list[str]:
        names: list[str] = []
        while len(names) < 6:
            name = (self.rng.choice(VILLAGE_HEADS) + self.rng.choice(VILLAGE_CORES)
                    + self.rng.choice(VILLAGE_TAILS))
            if name not in names:
                names.append(name)
        return names

    def person_name(self) -> str:
        given = self.rng.choice(GIVEN_CHARS)
        if self.rng.random() < 0.7:
            given += self.rng.choice(GIVEN_CHARS)
        return self.rng.choice(SURNAMES) + given

    def shop_name(self, place: str) -> str:
        return f"{self.rng.choice(SURNAMES)}记{self.rng.choice(SHOP_KINDS)}（{place}店）"

    def mobile(self) -> str:
        while True:
            number = self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if number not in self.phones_used:
                self.phones_used.add(number)
                return number

    def address(self, spec: _AreaSpec, place_idx: int) -> tuple[str, str]:
        """(service address, transformer area) somewhere on the given street or township."""
        place = spec.places[place_idx]
        if spec.kind == "urban":
            number = self.rng.randint(1, 320)
            unit, floor, room = (self.rng.randint(1, 6), self.rng.randint(1, 18),
                                 self.rng.randint(1, 4))
            return (f"{spec.district}{place}{number}号{unit}单元{floor}{room:02d}室",
                    f"{place}{(number - 1) // 80 + 1}号台区")
        village = self.rng.choice(self.villages[(spec.code, place)])
        return (f"{spec.district}{place}{village}{self.rng.randint(1, 180)}号",
                f"{village}{self.rng.randint(1, 2)}号台区")

    def usage(self, base: int, month: int) -> int:
        return max(0, round(base * SEASON[month] * self.rng.uniform(0.85, 1.15)))

    def paid_at(self, period_first: date) -> datetime:
        """A payment time between the bill's issue (1st of next month) and its due date."""
        issued = _local(_next_month(period_first))
        due_end = _local(_next_month(period_first).replace(day=25), time(23, 59))
        end = max(issued, min(due_end, self.now - timedelta(hours=1)))
        seconds = int((end - issued).total_seconds())
        return (issued + timedelta(seconds=self.rng.randint(0, max(seconds, 0)))).astimezone(UTC)


def _counts(session: Session) -> dict[str, int]:
    def count(model: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)

    return {
        "areas": count(Area),
        "feeders": count(Feeder),
        "customers": count(Customer),
        "important_customers": int(session.scalar(
            select(func.count()).select_from(Customer).where(Customer.important.is_(True))) or 0),
        "accounts": count(Account),
        "account_phones": count(AccountPhone),
        "bills": count(Bill),
        "accounts_in_arrears": int(session.scalar(
            select(func.count(func.distinct(Bill.account_id))).where(Bill.paid.is_(False)))
            or 0),
        "payments": count(Payment),
        "outages": count(Outage),
        "outage_areas": count(OutageArea),
        "agents": int(session.scalar(
            select(func.count()).select_from(Agent).where(Agent.role == "agent")) or 0),
        "supervisors": int(session.scalar(
            select(func.count()).select_from(Agent).where(Agent.role == "supervisor")) or 0),
    }


def seed_demo(
    session: Session, *, now: datetime, n_accounts: int = 5000, rng_seed: int = 95598,
) -> dict[str, int]:
    """Fill an empty database with the demo city and its staff; return table counts. The caller
    commits.

    Idempotent by detection: if any area exists, the database is taken as already seeded (or as
    real data that must not be mixed with demo rows), no city rows are written, and the counts of
    what is there are returned. Same now, n_accounts and rng_seed give the same data.

    Staff: 50 agents A001..A050 and 5 supervisors S01..S05, with Chinese names and skills
    (most general and billing, a third repair, a few english). They are added when no agent
    exists yet and the areas are the demo city's (a demo database from before agents existed
    gets them too; a real database never gets demo logins). DEMO ONLY: all of them have the
    password "95598" (DEMO_PASSWORD).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    if n_accounts < MIN_ACCOUNTS:
        raise ValueError(f"n_accounts must be at least {MIN_ACCOUNTS}, got {n_accounts}")
    if session.scalar(select(Area.id).limit(1)) is not None:
        logger.info("database already has areas; demo city seed skipped")
        if _is_demo_city(session):
            _seed_agents(session, now, rng_seed)
            _seed_calendars(session, now)
        return _counts(session)

    rng = random.Random(rng_seed)
    gen = _Generator(rng, now)

    area_ids = list(session.scalars(
        insert(Area).returning(Area.id, sort_by_parameter_order=True),
        [{"code": s.code, "name": s.name, "kind": s.kind} for s in AREAS]))
    area_id = {s.code: i for s, i in zip(AREAS, area_ids, strict=True)}
    feeder_rows: list[dict[str, Any]] = [
        {"code": f"{s.code}-F{k + 1}", "name": f"10kV{name}线", "area_id": area_id[s.code]}
        for s in AREAS for k, name in enumerate(s.feeders)
    ]
    feeder_ids = list(session.scalars(
        insert(Feeder).returning(Feeder.id, sort_by_parameter_order=True), feeder_rows))
    feeder_id = {row["code"]: i for row, i in zip(feeder_rows, feeder_ids, strict=True)}
    feeder_slots = [(s, k) for s in AREAS for k in range(len(s.feeders))]

    account_nos = [f"37{n:08d}" for n in rng.sample(range(10**8), n_accounts)]
    # Per account: customer index, area spec, feeder index, address, 台区, phones, kind, base kWh.
    customers: list[dict[str, Any]] = []
    customer_phone: list[str | None] = []
    accounts: list[dict[str, Any]] = []
    for group in IMPORTANT:
        lead = group[0]
        customers.append({"name": lead.name, "important": True, "important_kind": lead.kind})
        # One phone per account: each supply point has its own duty electrician.
        group_phones = [gen.mobile() for _ in group]
        customer_phone.append(group_phones[0])
        for imp, imp_phone in zip(group, group_phones, strict=True):
            spec = next(s for s in AREAS if s.code == imp.area)
            accounts.append({
                "customer": len(customers) - 1, "spec": spec, "feeder": imp.feeder,
                "address": imp.address, "taiqu": imp.transformer_area,
                "phones": [imp_phone], "tariff": "commercial" if imp.kind != "life_support"
                else "residential", "base_kwh": imp.monthly_kwh, "arrears": False,
            })

    weights = [_KIND_WEIGHT[s.kind] for s in AREAS]
    n_regular = n_accounts - len(accounts)
    for i in range(n_regular):
        if i < len(feeder_slots):
            # One account on every feeder first, so small demo sets still cover every area.
            spec, feeder_k = feeder_slots[i]
            place_idx = feeder_k % len(spec.places)
            arrears = i % 5 == 4
        else:
            spec = rng.choices(AREAS, weights)[0]
            place_idx = rng.randrange(len(spec.places))
            feeder_k = place_idx % len(spec.feeders)
            arrears = rng.random() < ARREARS_SHARE
        address, taiqu = gen.address(spec, place_idx)
        # The first account after the feeder anchors is always a second home, so even the
        # smallest set has a phone shared by two accounts.
        shared_home = i == len(feeder_slots)
        if shared_home or (i > len(feeder_slots) and rng.random() < 0.03):
            # A second home or a shop of an existing household: same customer, same phone.
            cust = (next(c for c in range(len(IMPORTANT), len(customers)) if customer_phone[c])
                    if shared_home else rng.randrange(len(IMPORTANT), len(customers)))
            known = customer_phone[cust]
            phones = [known] if known else []
            tariff = "residential"
        else:
            commercial = spec.kind == "urban" and rng.random() < 0.05
            name = gen.shop_name(spec.places[place_idx]) if commercial else gen.person_name()
            customers.append({"name": name, "important": False, "important_kind": None})
            cust = len(customers) - 1
            r = rng.random()
            phones = [] if r < 0.03 else [gen.mobile()] if r < 0.93 else [gen.mobile(),
                                                                           gen.mobile()]
            customer_phone.append(phones[0] if phones else None)
            tariff = "commercial" if commercial else "residential"
        base = (rng.randint(600, 2500) if tariff == "commercial"
                else round(rng.lognormvariate(5.1 if spec.kind == "urban" else 4.8, 0.4)))
        accounts.append({"customer": cust, "spec": spec, "feeder": feeder_k, "address": address,
                         "taiqu": taiqu, "phones": phones, "tariff": tariff, "base_kwh": base,
                         "arrears": arrears})

    customer_ids = list(session.scalars(
        insert(Customer).returning(Customer.id, sort_by_parameter_order=True), customers))
    account_ids = list(session.scalars(
        insert(Account).returning(Account.id, sort_by_parameter_order=True),
        [{
            "account_no": account_nos[n],
            "customer_id": customer_ids[a["customer"]],
            "service_address": a["address"],
            "area_id": area_id[a["spec"].code],
            "feeder_id": feeder_id[f"{a['spec'].code}-F{a['feeder'] + 1}"],
            "transformer_area": a["taiqu"],
        } for n, a in enumerate(accounts)]))

    phone_rows = [{"account_id": acc_id, "phone": p}
                  for acc_id, a in zip(account_ids, accounts, strict=True)
                  for p in dict.fromkeys(a["phones"])]
    bill_rows: list[dict[str, Any]] = []
    payment_rows: list[dict[str, Any]] = []
    for acc_id, a in zip(account_ids, accounts, strict=True):
        unpaid = rng.choices((1, 2, 3), (60, 30, 10))[0] if a["arrears"] else 0
        partial = unpaid > 0 and rng.random() < 0.1
        for m, first in enumerate(gen.months):
            kwh = gen.usage(a["base_kwh"], first.month)
            amount = (_residential_amount(kwh) if a["tariff"] == "residential"
                      else _money(kwh * COMMERCIAL_RATE))
            is_unpaid = m >= len(gen.months) - unpaid
            paid_amount = amount
            if is_unpaid:
                # A part payment leaves the rest owed on the oldest unpaid bill.
                paid_amount = (_money(amount * Decimal("0.5"))
                               if partial and m == len(gen.months) - unpaid else Decimal("0.00"))
            bill_rows.append({
                "account_id": acc_id, "period": f"{first:%Y-%m}", "usage_kwh": kwh,
                "amount": amount, "due_date": _next_month(first).replace(day=25),
                "paid": not is_unpaid, "paid_amount": paid_amount,
            })
            if paid_amount > 0:
                payment_rows.append({
                    "account_id": acc_id, "amount": paid_amount, "paid_at": gen.paid_at(first),
                    "channel": rng.choices(PAYMENT_CHANNELS, PAYMENT_CHANNEL_WEIGHTS)[0],
                })
    session.execute(insert(AccountPhone), phone_rows)
    session.execute(insert(Bill), bill_rows)
    session.execute(insert(Payment), payment_rows)
    _seed_outages(session, now, area_id, feeder_id)
    _seed_agents(session, now, rng_seed)
    _seed_calendars(session, now)
    session.flush()
    summary = _counts(session)
    logger.info("demo city seeded: %s", summary)
    return summary


def _is_demo_city(session: Session) -> bool:
    found = {(code, name) for code, name in session.execute(select(Area.code, Area.name))}
    return found == {(spec.code, spec.name) for spec in AREAS}


def _demo_skills(i: int, rng: random.Random) -> dict[str, int]:
    """Skills of demo agent number i (0-based): proficiency 1..5 per skill."""
    skills: dict[str, int] = {}
    if i % 15 != 2:  # four repair specialists take no general calls
        skills["general"] = rng.randint(2, 5)
    if i % 8 != 7:
        skills["billing"] = rng.randint(2, 5)
    if i % 3 == 2:
        skills["repair"] = rng.randint(3, 5)
    if i % 12 == 4:
        skills["english"] = rng.randint(2, 4)
    return skills


def _seed_calendars(session: Session, now: datetime) -> None:
    """The demo's service hours (issue 15 §3): billing (电费) is staffed 08:00-20:00 and routes
    to general at night; general, repair and english answer 7×24 (no calendar). Billing, as
    no shipped flow transfers to it: a demo call at night changes nothing. Kept if present."""
    from cti.db import calendars
    from cti.db.models_calendars import SkillCalendar

    if session.get(SkillCalendar, "billing") is not None:
        return
    calendars.set_calendar(session, "billing", dict.fromkeys(
        ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "08:00-20:00"),
        after_hours="route", route_to="general", by="seed", now=now, always_open="general")


def _seed_agents(session: Session, now: datetime, rng_seed: int) -> None:
    """The demo staff, unless any agent exists; see seed_demo."""
    ensure_shipped_skills(session, now)  # what the demo's agents hold
    if session.scalar(select(Agent.id).limit(1)) is not None:
        logger.info("database already has agents; demo staff seed skipped")
        return
    # Its own rng, so the staff changes no city row of a given seed.
    rng = random.Random(f"{rng_seed}-agents")
    names: list[str] = []
    while len(names) < DEMO_AGENTS + DEMO_SUPERVISORS:
        given = rng.choice(GIVEN_CHARS) + (rng.choice(GIVEN_CHARS) if rng.random() < 0.7 else "")
        name = rng.choice(SURNAMES) + given
        if name not in names:
            names.append(name)
    # argon2 is slow on purpose; one hash serves all demo users (they share the password anyway).
    password_hash = PASSWORD_HASHER.hash(DEMO_PASSWORD)
    rows: list[dict[str, Any]] = [
        {"agent_id": f"A{i + 1:03d}", "name": names[i], "role": "agent",
         "skills": _demo_skills(i, rng)}
        for i in range(DEMO_AGENTS)
    ] + [
        {"agent_id": f"S{k + 1:02d}", "name": names[DEMO_AGENTS + k], "role": "supervisor",
         # Supervisors take calls themselves on a storm day.
         "skills": {"general": 5, "billing": 5, "repair": 4, **({"english": 4} if k == 1 else {})}}
        for k in range(DEMO_SUPERVISORS)
    ] + [
        # the desktop's administrator: may do what a supervisor may; takes no calls
        {"agent_id": "admin", "name": "管理员", "role": "admin", "skills": {}},
    ] + [
        # a department's user each (issue 15 §1): they work their department's orders
        {"agent_id": agent_id, "name": name, "role": "department", "skills": {},
         "department": department}
        for agent_id, name, department in DEMO_DEPARTMENT_USERS
    ]
    session.execute(insert(Agent), [
        {**row, "department": row.get("department"), "password_hash": password_hash,
         "active": True, "created_at": now}
        for row in rows])
    logger.info("demo staff seeded: %d agents, %d supervisors (demo password)",
                DEMO_AGENTS, DEMO_SUPERVISORS)


def _seed_outages(session: Session, now: datetime, area_id: dict[str, int],
                  feeder_id: dict[str, int]) -> None:
    """Two faults in progress, a planned outage now and one in 3 days, plus two that must not
    be told to callers (restored yesterday, planned beyond the 7-day notice window)."""
    base = now.astimezone(LOCAL_TZ).replace(second=0, microsecond=0)
    today = base.date()

    def at(d: int, h: int) -> datetime:
        return _local(today + timedelta(days=d), time(h, 0))

    def hhmm(t: datetime) -> str:
        t = t.astimezone(LOCAL_TZ)
        return f"{t.month}月{t.day}日{t:%H:%M}"

    def served_by(code: str, feeder_no: int) -> str:
        # The streets/townships the seeded accounts on that feeder really live on.
        spec = next(s for s in AREAS if s.code == code)
        n = len(spec.feeders)
        return "、".join(p for i, p in enumerate(spec.places) if i % n == feeder_no - 1)

    planned_now = (base - timedelta(hours=2)).replace(minute=0)
    soon = at(3, 8)
    far = at(12, 8)
    specs: list[tuple[dict[str, Any], list[tuple[str, str | None]]]] = [
        ({"kind": "fault", "cause": "10kV线路故障",
          "start_at": base - timedelta(minutes=40),
          "expected_restore_at": base + timedelta(hours=2),
          "notice": f"因10kV泉城线故障，{served_by('QY01', 1)}部分区域停电，抢修人员已到场，预计"
                    f"{hhmm(base + timedelta(hours=2))}恢复供电。"},
         [("QY01", "QY01-F1")]),
        ({"kind": "fault", "cause": "大风导致树障",
          "start_at": base - timedelta(minutes=95),
          "expected_restore_at": base + timedelta(hours=4),
          "notice": f"受大风天气影响，线路树障跳闸，南部山区停电，正在巡线抢修，预计"
                    f"{hhmm(base + timedelta(hours=4))}恢复供电。"},
         [("QY11", None)]),
        ({"kind": "planned", "cause": "10kV线路计划检修",
          "start_at": planned_now, "expected_restore_at": planned_now + timedelta(hours=8),
          "notice": f"因10kV英雄山线计划检修，{served_by('QY02', 2)}部分区域于{hhmm(planned_now)}至"
                    f"{hhmm(planned_now + timedelta(hours=8))}停电。"},
         [("QY02", "QY02-F2")]),
        ({"kind": "planned", "cause": "配电线路改造施工",
          "start_at": soon, "expected_restore_at": soon + timedelta(hours=10),
          "notice": f"因配电线路改造施工，{served_by('QY06', 1)}部分区域于{hhmm(soon)}至"
                    f"{hhmm(soon + timedelta(hours=10))}停电，请提前做好准备。"},
         [("QY06", "QY06-F1")]),
        ({"kind": "fault", "cause": "配电变压器故障",
          "start_at": base - timedelta(hours=26),
          "expected_restore_at": base - timedelta(hours=22),
          "restored_at": base - timedelta(hours=21, minutes=30),
          "notice": f"{served_by('QY03', 2)}配电变压器故障，已恢复供电。"},
         [("QY03", "QY03-F2")]),
        ({"kind": "planned", "cause": "110kV变电站设备检修",
          "start_at": far, "expected_restore_at": far + timedelta(hours=9),
          "notice": f"因110kV变电站设备检修，天桥城区于{hhmm(far)}至"
                    f"{hhmm(far + timedelta(hours=9))}停电。"},
         [("QY04", None)]),
    ]
    categories = {"大风导致树障": "storm_repair"}  # the rest: their kind (fault, planned)
    for values, where in specs:
        outage = Outage(**{"restored_at": None, **values})
        outage.category = categories.get(values["cause"], values["kind"])
        if values["kind"] == "planned":  # planned work's schedule is its announced window
            outage.schedule_end_at = values["expected_restore_at"]
        outage.areas = [OutageArea(area_id=area_id[a], feeder_id=feeder_id[f] if f else None)
                        for a, f in where]
        session.add(outage)


def demo_accounts(session: Session, now: datetime) -> list[dict[str, Any]]:
    """One account per IVR path worth demonstrating (DEMO_PURPOSES), chosen by account number.

    Each purpose gets its own account, reachable by a phone that maps to it alone (except the
    phone_multiple_accounts one). A purpose with no fitting account is left out and logged.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    today = now.astimezone(LOCAL_TZ).date()
    rows = session.execute(
        select(Account.account_no, Customer.important, Customer.important_kind)
        .join(Customer, Customer.id == Account.customer_id)
        .order_by(Account.account_no)
    ).all()
    phones: dict[str, list[str]] = {}
    phone_accounts: dict[str, int] = {}
    for owner, number in session.execute(
            select(Account.account_no, AccountPhone.phone)
            .join(AccountPhone, AccountPhone.account_id == Account.id)
            .order_by(Account.account_no, AccountPhone.phone)):
        phones.setdefault(owner, []).append(number)
        phone_accounts[number] = phone_accounts.get(number, 0) + 1

    chosen: dict[str, tuple[str, str]] = {}

    def own_phone(account_no: str) -> str | None:
        return next((p for p in phones.get(account_no, []) if phone_accounts[p] == 1), None)

    wanted = set(DEMO_PURPOSES) - {"unknown_account"}
    for account_no, important, important_kind in rows:
        if wanted <= chosen.keys():
            break
        if important:
            phone = own_phone(account_no)
            if "important_customer" not in chosen and important_kind == "hospital" and phone:
                chosen["important_customer"] = (account_no, phone)
            continue
        shared = next((p for p in phones.get(account_no, []) if phone_accounts[p] > 1), None)
        if shared and "phone_multiple_accounts" not in chosen:
            chosen["phone_multiple_accounts"] = (account_no, shared)
            continue
        phone = own_phone(account_no)
        if phone is None:
            continue
        purpose = _purpose_of(session, account_no, now, today, chosen.keys())
        if purpose is not None:
            chosen[purpose] = (account_no, phone)

    unknown_no, unknown_phone = _unknown(session, {r.account_no for r in rows}, phone_accounts)
    chosen["unknown_account"] = (unknown_no, unknown_phone)

    result: list[dict[str, Any]] = []
    for purpose in DEMO_PURPOSES:
        if purpose not in chosen:
            logger.warning("no demo account fits purpose %s (stale or foreign data?)", purpose)
            continue
        account_no, phone = chosen[purpose]
        info = bill_info(session, account_no)
        outages = outages_for_account(session, account_no, now) or []
        result.append({
            "purpose": purpose,
            "account_no": account_no,
            "phone": phone,
            "amount_due": f"{info.amount_due if info else Decimal(0):.2f}",
            "outages": [{"kind": o.kind, "cause": o.cause,
                         "expected_restore_at": (o.expected_restore_at.isoformat()
                                                 if o.expected_restore_at else None)}
                        for o in outages],
        })
    return result


def _purpose_of(session: Session, account_no: str, now: datetime, today: date,
                taken: AbstractSet[str]) -> str | None:
    """The first still-open purpose this ordinary account demonstrates, if any."""
    outages = outages_for_account(session, account_no, now) or []
    info = bill_info(session, account_no)
    if info is None:  # deleted since it was listed
        return None
    if len(outages) == 1:
        o = outages[0]
        if o.kind == "fault":
            candidates = ["outage_fault"]
        elif o.start_at <= now:
            candidates = ["outage_planned"]
        else:
            candidates = ["outage_planned_upcoming"]
    elif not outages:
        candidates = []
        if info.amount_due > 0 and info.due_date is not None and info.due_date < today:
            candidates.append("bill_arrears")
        if info.amount_due == 0 and info.last_payment_at is not None:
            candidates.append("bill_paid_up")
        candidates.append("no_outage")
    else:
        candidates = []
    return next((c for c in candidates if c not in taken), None)


def _unknown(session: Session, account_nos: set[str], phone_accounts: dict[str, int],
             ) -> tuple[str, str]:
    """A 10-digit account number and a mobile number that nobody has."""
    number = 3799999999
    while str(number) in account_nos:
        number -= 1
    phone = 13000000000
    while str(phone) in phone_accounts or accounts_for_phone(session, str(phone)):
        phone += 1
    return str(number), str(phone)
