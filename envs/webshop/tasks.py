"""WebShop's goals and splits, and the two catalog sources: the embedded generated one, users' upstream files.

Both sources go through the same path: raw records in the upstream ``items_shuffle*.json`` schema plus
instruction records in the ``items_ins_v2*.json`` schema are cleaned by :func:`clean_products` (the
upstream field handling: dropped ``nan``/duplicate/over-long ASINs, price strings, option
normalization, ``DUMMY_ATTR`` for products without attributes; a malformed record of a user's file raises
``TaskFileError`` naming file, record and field), then goals are made from them by
:func:`synthetic_goals` (one per option combination, price cap, inverse-frequency weight) or, when
``items_human_ins.json`` is present, :func:`human_goals`. Goals are shuffled with seed 233 and split by
index: ``test`` = goals 0-499, ``valid`` (upstream "eval") = 500-1499, ``train`` = 1500 onwards.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import random
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root, cached_folder
from agentgym.envs.webshop.catalog import GENERATOR_VERSION, Catalog, generate_raw
from agentgym.error import InvalidArgumentError, TaskFileError

#: Upstream's goal shuffle seed and split boundaries (goal index ranges).
GOAL_SHUFFLE_SEED = 233
SPLIT_RANGES: dict[str, tuple[int, int | None]] = {
    "test": (0, 500),
    "valid": (500, 1500),
    "train": (1500, None),
}
#: Price caps an instruction may name (upstream's PRICE_RANGE).
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
NO_PRICE_CAP = 1_000_000.0


# ----------------------------------------------------------------------------- cleaning (upstream schema)
def _fail(file: str, record: Any, problem: str) -> TaskFileError:
    return TaskFileError(f"{file}: record {record}: {problem}")


def _text(value: Any, file: str, record: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(file, record, f"field {field!r} must be a string, got {type(value).__name__}")
    return value


def parse_pricing(pricing: Any) -> list[float]:
    """Upstream's price parsing: the numbers between ``$`` signs (``"$10.00$20.00"`` -> [10.0, 20.0])."""
    if not pricing:
        return []
    prices = []
    for piece in str(pricing).split("$")[1:]:
        digits = re.sub(r"[^\d.]", "", piece)
        if digits:
            prices.append(float(digits))
    return prices


def clean_products(
    raw: list,
    instructions: Mapping[str, Any],
    file: str = "items",
    ins_file: str = "ins",
    price_seed: int = 0,
) -> list[dict[str, Any]]:
    """Clean upstream-schema product records as upstream's loader does.

    Returns products with the fields the env uses: ``asin``, ``name``/``Title``, ``category``, ``query``,
    ``product_category``, ``Description``, ``BulletPoints``, ``pricing``, ``Price`` (one value; for a
    price range drawn uniformly once, seeded), ``price_tag``, ``options`` (name -> values),
    ``MainImage``, ``Attributes``, ``instruction_text``/``instruction_attributes`` (when given) and
    ``name_nouns`` (when stored). Malformed records raise :class:`TaskFileError` naming file and record.
    """
    if not isinstance(raw, list):
        raise TaskFileError(f"{file}: expected a JSON list of products, got {type(raw).__name__}")
    if not isinstance(instructions, Mapping):
        raise TaskFileError(f"{ins_file}: expected a JSON object mapping ASINs to attributes")
    rng = random.Random(price_seed)
    products, seen = [], set()
    for index, item in enumerate(raw):
        where = f"#{index}"
        if not isinstance(item, dict):
            raise _fail(file, where, f"expected an object, got {type(item).__name__}")
        asin = item.get("asin")
        if asin is None:
            raise _fail(file, where, "missing 'asin'")
        asin = str(asin)
        where = f"#{index} (asin {asin!r})"
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        bullets = item.get("small_description")
        if isinstance(bullets, str):
            bullets = [bullets]
        elif bullets is None:
            bullets = []
        elif not (isinstance(bullets, list) and all(isinstance(b, str) for b in bullets)):
            raise _fail(file, where, "field 'small_description' must be a string or a list of strings")
        pricing = item.get("pricing")
        if pricing is not None and not isinstance(pricing, (str, int, float)):
            raise _fail(file, where, f"field 'pricing' must be a price string, got {type(pricing).__name__}")
        prices = parse_pricing(pricing)
        if not prices:
            price, tag = 100.0, "$100.0"
        elif len(prices) == 1:
            price, tag = prices[0], f"${prices[0]}"
        else:
            price, tag = rng.uniform(prices[0], prices[1]), f"${prices[0]} to ${prices[1]}"
        options: dict[str, list[str]] = {}
        raw_options = item.get("customization_options")
        if raw_options is not None and not isinstance(raw_options, dict):
            raise _fail(file, where, "field 'customization_options' must be an object of option lists")
        for name, entries in (raw_options or {}).items():
            if not isinstance(entries, list):
                raise _fail(file, where, f"option {name!r} must be a list of {{value, image}} objects")
            values = []
            for entry in entries:
                value = entry.get("value") if isinstance(entry, dict) else None
                if not isinstance(value, str):
                    raise _fail(file, where, f"option {name!r} has an entry without a string 'value': {entry!r}")
                values.append(value.strip().replace("/", " | ").lower())
            options[name.lower()] = values
        images = item.get("images") or []
        ins = instructions.get(asin) or {}
        if not isinstance(ins, dict):
            raise _fail(ins_file, f"asin {asin!r}", "expected an object with 'attributes'")
        attributes = ins.get("attributes") or ["DUMMY_ATTR"]
        if not (isinstance(attributes, list) and all(isinstance(a, str) for a in attributes)):
            raise _fail(ins_file, f"asin {asin!r}", "field 'attributes' must be a list of strings")
        nouns = item.get("name_nouns")
        name = _text(item.get("name"), file, where, "name")
        products.append(
            {
                "asin": asin,
                "name": name,
                "Title": name,
                "category": _text(item.get("category"), file, where, "category"),
                "query": _text(item.get("query"), file, where, "query").lower().strip(),
                "product_category": _text(item.get("product_category"), file, where, "product_category"),
                "Description": _text(item.get("full_description"), file, where, "full_description"),
                "BulletPoints": bullets,
                "pricing": prices,
                "Price": price,
                "price_tag": tag,
                "options": options,
                "MainImage": images[0] if images and isinstance(images, list) else None,
                "Attributes": attributes,
                "instruction_text": ins.get("instruction"),
                "instruction_attributes": ins.get("instruction_attributes"),
                "name_nouns": list(nouns) if isinstance(nouns, list) else None,
            }
        )
    return products


# ----------------------------------------------------------------------------- goals
def price_cap(price: float, rng: random.Random) -> tuple[float, str]:
    """Upstream's price cap: the larger of two of the next four caps above the price, and its text."""
    caps = [p for p in PRICE_RANGE if p > price][:4]
    if len(caps) >= 2:
        upper = max(rng.sample(caps, 2))
        return upper, f", and price lower than {upper:.2f} dollars"
    return NO_PRICE_CAP, ""


def _goal_base(product: Mapping[str, Any]) -> dict[str, Any]:
    return {key: product[key] for key in ("asin", "category", "query", "name", "product_category")}


def synthetic_goals(products: list[dict], rng: random.Random) -> list[dict[str, Any]]:
    """One goal per option combination of each product with an instruction (upstream's synthetic goals)."""
    with_instructions = [p for p in products if p.get("instruction_text") and p.get("instruction_attributes")]
    counts = Counter(a for p in with_instructions for a in p["instruction_attributes"])
    goals = []
    for product in with_instructions:
        attributes = list(product["instruction_attributes"])
        upper, price_text = price_cap(product["Price"], rng)
        weight = sum(1.0 / counts[a] for a in attributes) / len(attributes)
        names = list(product["options"])
        for combination in itertools.product(*(product["options"][n] for n in names)):
            goal_options = dict(zip(names, combination, strict=True))
            option_text = ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
            text = product["instruction_text"] + (f" with {option_text}" if option_text else "") + price_text
            goals.append(
                {
                    **_goal_base(product),
                    "instruction_text": text,
                    "attributes": attributes,
                    "price_upper": upper,
                    "goal_options": goal_options,
                    "weight": weight,
                }
            )
    return goals


def human_goals(products_by_asin: Mapping[str, dict], human: Any, file: str, rng: random.Random) -> list[dict]:
    """Goals from ``items_human_ins.json``: ``{asin: [{instruction, instruction_attributes,
    instruction_options}, ...]}``; entries without attributes, or for unknown products, are skipped."""
    if not isinstance(human, dict):
        raise TaskFileError(f"{file}: expected a JSON object mapping ASINs to instruction lists")
    goals = []
    for asin, entries in human.items():
        product = products_by_asin.get(asin)
        if product is None:
            continue
        if not isinstance(entries, list):
            raise _fail(file, f"asin {asin!r}", "expected a list of instruction objects")
        for number, entry in enumerate(entries):
            where = f"asin {asin!r} entry {number}"
            if not isinstance(entry, dict) or not isinstance(entry.get("instruction"), str):
                raise _fail(file, where, "expected an object with a string 'instruction'")
            attributes = entry.get("instruction_attributes") or []
            if not attributes:
                continue
            options = entry.get("instruction_options") or []
            if not isinstance(attributes, list) or not isinstance(options, (list, dict)):
                raise _fail(file, where, "'instruction_attributes' and 'instruction_options' must be lists")
            upper, price_text = price_cap(product["Price"], rng)
            goals.append(
                {
                    **_goal_base(product),
                    "instruction_text": entry["instruction"].strip(".") + price_text,
                    "attributes": list(attributes),
                    "price_upper": upper,
                    "goal_options": list(options) if isinstance(options, list) else dict(options),
                    "weight": 1.0,
                }
            )
    return goals


# ----------------------------------------------------------------------------- splits
def shuffled_goals(goals: list[dict]) -> list[dict]:
    """Goals in upstream order, shuffled with upstream's seed (:data:`GOAL_SHUFFLE_SEED`): the split order."""
    goals = list(goals)
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return goals


def split_goals(catalog: Catalog, split: str) -> list[tuple[int, dict]]:
    """``(goal index, goal)`` pairs of one split."""
    start, stop = SPLIT_RANGES[split]
    stop = len(catalog.goals) if stop is None else min(stop, len(catalog.goals))
    return [(i, catalog.goals[i]) for i in range(start, stop)]


# ----------------------------------------------------------------------------- the two sources
@functools.lru_cache(maxsize=4)
def generated_catalog(seed: int = 0, num_products: int = 10_000) -> Catalog:
    """The embedded catalog, deterministic in ``seed`` and ``num_products``.

    Memoized per process and cached on disk (``$AGENTGYM_CACHE/webshop/catalog-g<version>-s<seed>-n<size>/``,
    written atomically), so only the first use generates it.
    """
    source = {"kind": "generated", "generator": GENERATOR_VERSION, "seed": seed, "num_products": num_products}
    made: list[Catalog] = []

    def build(folder: Path) -> None:
        items, instructions = generate_raw(seed, num_products)
        products = clean_products(items, instructions, "generated items", "generated instructions")
        goals = shuffled_goals(synthetic_goals(products, random.Random(f"webshop-goals-{seed}")))
        made.append(Catalog(products, goals, source))
        with open(folder / "catalog.json", "w", encoding="utf-8") as out:
            json.dump({"products": products, "goals": made[0].goals}, out, separators=(",", ":"))

    folder = cache_root() / "webshop" / f"catalog-g{GENERATOR_VERSION}-s{seed}-n{num_products}"
    path = cached_folder(folder, build, "catalog.json")
    if made:
        return made[0]
    with open(path, encoding="utf-8") as handle:
        cached = json.load(handle)
    return Catalog(cached["products"], cached["goals"], source)  # stored in split order


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise TaskFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _pick(directory: Path, pattern: str, preferred: str, required: bool) -> Path | None:
    found = sorted(directory.glob(pattern))
    if not found:
        if required:
            raise TaskFileError(f"{directory}: no {pattern} file (WebShop's product file, e.g. {preferred})")
        return None
    if len(found) == 1:
        return found[0]
    for path in found:
        if path.name == preferred:
            return path
    raise TaskFileError(f"{directory}: several {pattern} files ({[p.name for p in found]}); keep one")


def _load_user_catalog(directory: str, human: bool, mtimes: tuple) -> Catalog:
    root = Path(directory)
    items_path = _pick(root, "items_shuffle*.json", "items_shuffle_1000.json", required=True)
    ins_path = _pick(root, "items_ins_v2*.json", "items_ins_v2_1000.json", required=False)
    human_path = root / "items_human_ins.json"
    instructions = _read_json(ins_path) if ins_path else {}
    products = clean_products(_read_json(items_path), instructions, str(items_path), str(ins_path))
    if not products:
        raise TaskFileError(f"{items_path}: no usable products")
    goal_rng = random.Random("webshop-goals-user")
    by_asin = {p["asin"]: p for p in products}
    if human and human_path.exists():
        goals, goal_kind = human_goals(by_asin, _read_json(human_path), str(human_path), goal_rng), "human"
    else:
        goals, goal_kind = synthetic_goals(products, goal_rng), "synthetic"
    if not goals:  # a wrong schema parses as "no goals": say which file and fields were expected
        if goal_kind == "human":
            matched = sum(1 for asin in _read_json(human_path) if asin in by_asin)
            raise TaskFileError(
                f"{human_path}: no usable goals: {matched} of its ASINs are products of {items_path.name}, and "
                "no entry of those has a non-empty 'instruction_attributes' list (expected "
                "{asin: [{'instruction': str, 'instruction_attributes': [str, ...], 'instruction_options': [...]}]})"
            )
        raise TaskFileError(
            f"{ins_path or items_path}: no usable goals: no product has a non-empty 'attributes' list "
            "(expected items_ins_v2*.json as {asin: {'attributes': [str, ...], ...}})"
        )
    files = {p.name: _sha256(p) for p in (items_path, ins_path, human_path) if p is not None and p.exists()}
    return Catalog(products, shuffled_goals(goals), {"kind": "data_dir", "goals": goal_kind, "files": files})


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


_user_catalogs = functools.lru_cache(maxsize=2)(_load_user_catalog)


def user_catalog(data_dir: str | os.PathLike, human: bool = True) -> Catalog:
    """A catalog from the upstream data files in ``data_dir`` (memoized while the files are unchanged)."""
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise InvalidArgumentError(f"data_dir {str(data_dir)!r} is not a directory")
    mtimes = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(root.glob("items_*.json")))
    return _user_catalogs(str(root), human, mtimes)
