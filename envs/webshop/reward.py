"""WebShop's reward: attribute, option, price and type parts, as the upstream goal scorer defines them.

``R = r_type * (N_att + N_opt + [price <= price_upper]) / (|attributes| + |options| + 1)``

* ``N_att``: goal attributes matched by a purchased ``Attributes`` entry with a fuzzy token-set ratio
  above 85, or else found as a substring of the title, the bullet points or the description.
* ``N_opt``: goal options matched (ratio above 85) by a chosen option value, both sides first reduced
  to a colour name by :func:`normalize_color`.
* ``r_type``: 1.0, lowered to 0.5 when neither the search query, nor two breadcrumb levels, nor more
  than 20% of the goal title's nouns match; to 0.1 when under 10% of the nouns match; 0.0 when none do.

The fuzzy ratio is ``thefuzz``'s ``token_set_ratio`` (default processing, rounded to an int), computed
with RapidFuzz, which ``thefuzz`` itself wraps. Title nouns are read from each product's stored
``name_nouns``, so the type reward does not depend on a part-of-speech tagger version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from rapidfuzz import fuzz

#: Colour names :func:`normalize_color` reduces option values to, one per line of the table below;
#: longer names are tried first, so "navy blue" is kept whole rather than read as "blue".
_COLOR_TABLE = """
black, jet black, matte black, white, off white, pearl white, snow white, ivory, cream, beige
grey, gray, dark grey, light grey, heather grey, charcoal, slate, silver, space gray
gold, rose gold, champagne, bronze, copper, brown, chocolate, coffee, mocha, espresso, walnut
oak, cherry, mahogany, tan, khaki, camel, sand, taupe, natural, nude
red, dark red, wine red, burgundy, maroon, pink, hot pink, light pink, blush, coral, salmon, peach
orange, burnt orange, rust, amber, yellow, mustard, lemon, green, dark green, light green, olive
army green, sage, mint, lime, emerald, forest green, teal, turquoise, aqua, cyan, blue, light blue
sky blue, baby blue, royal blue, navy blue, navy, dark blue, midnight blue, denim, cobalt, indigo
purple, lavender, lilac, violet, plum, magenta, fuchsia, mauve, clear, transparent, multicolor
rainbow, leopard, camouflage
"""
COLOR_NAMES: tuple[str, ...] = tuple(
    sorted(
        {name.strip() for name in _COLOR_TABLE.replace("\n", ",").split(",") if name.strip()},
        key=lambda name: (-len(name), name),
    )
)

_NON_ALNUM = re.compile(r"(?ui)\W")


def normalize_color(value: str) -> str:
    """The first colour name (longest first) contained in ``value``, else ``value`` unchanged."""
    for color in COLOR_NAMES:
        if color in value:
            return color
    return value


def _full_process(text: str) -> str:
    """thefuzz's default processing: ASCII only, non-alphanumerics to spaces, lower case, trimmed."""
    text = text.encode("ascii", "ignore").decode()
    return _NON_ALNUM.sub(" ", text).replace("_", " ").lower().strip()


def token_set_ratio(a: str, b: str) -> int:
    """``thefuzz.fuzz.token_set_ratio(a, b)``: 0-100, rounded to an int."""
    a, b = _full_process(a), _full_process(b)
    if not a or not b:
        return 0
    return round(fuzz.token_set_ratio(a, b))


def attribute_matches(goal_attributes: Iterable[str], product: Mapping[str, Any]) -> int:
    """N_att: goal attributes found among the product's attributes (fuzzy) or in its text."""
    attributes = list(product.get("Attributes") or [])
    title = (product.get("Title") or "").lower()
    bullets = " ".join(product.get("BulletPoints") or []).lower()
    description = (product.get("Description") or "").lower()
    count = 0
    for goal in goal_attributes:
        if any(token_set_ratio(attribute, goal) > 85 for attribute in attributes):
            count += 1
        elif goal in title or goal in bullets or goal in description:
            count += 1
    return count


def goal_option_values(goal_options: Any) -> list[str]:
    """Goal options as a list of values (synthetic goals store a name->value dict, human goals a list)."""
    if isinstance(goal_options, Mapping):
        return [str(value) for value in goal_options.values()]
    return [str(value) for value in goal_options or []]


def option_matches(goal_options: Any, chosen: Mapping[str, str]) -> int:
    """N_opt: goal option values matched by a chosen option value after colour normalization."""
    chosen_values = [normalize_color(str(value)) for value in chosen.values()]
    count = 0
    for goal in goal_option_values(goal_options):
        goal = normalize_color(goal)
        if any(token_set_ratio(value, goal) > 85 for value in chosen_values):
            count += 1
    return count


def title_score(purchased_nouns: Iterable[str], goal_nouns: Iterable[str]) -> float:
    """Share of the goal title's nouns that the purchased title has; 0.2 when the goal title has none."""
    goal = set(goal_nouns)
    if not goal:
        return 0.2
    return len(goal & set(purchased_nouns)) / len(goal)


def type_reward(purchased: Mapping[str, Any], goal: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
    """r_type and its inputs (query match, category match, title score)."""
    query_match = purchased.get("query") == goal.get("query")
    purchased_levels = set((purchased.get("product_category") or "").split("›"))
    goal_levels = set((goal.get("product_category") or "").split("›"))
    category_match = len(purchased_levels & goal_levels) >= 2
    score = title_score(purchased.get("name_nouns") or (), goal.get("name_nouns") or ())
    r_type = 1.0
    if not (query_match or category_match or score > 0.2):
        r_type = 0.5
    if score < 0.1:
        r_type = 0.1
    if score == 0:
        r_type = 0.0
    return r_type, {"query_match": query_match, "category_match": category_match, "title_score": score}


def compute_reward(
    purchased: Mapping[str, Any], chosen: Mapping[str, str], price: float, goal: Mapping[str, Any]
) -> tuple[float, dict[str, Any]]:
    """The reward for buying ``purchased`` at ``price`` with options ``chosen`` under ``goal``.

    ``goal`` holds ``attributes``, ``goal_options``, ``price_upper`` and the goal product's ``query``,
    ``product_category`` and ``name_nouns``. Returns the reward and its parts (``r_att``, ``r_option``
    (None without goal options), ``r_price``, ``r_type``, the weights ``w_att``/``w_option``/``w_price``
    and the type-reward inputs).
    """
    attributes = list(goal.get("attributes") or [])
    options = goal_option_values(goal.get("goal_options"))
    n_att = attribute_matches(attributes, purchased)
    n_opt = option_matches(goal.get("goal_options"), chosen)
    r_price = price <= float(goal.get("price_upper", 1_000_000.0))
    r_type, type_parts = type_reward(purchased, goal)
    denominator = len(attributes) + len(options) + 1
    reward = r_type * (n_att + n_opt + float(r_price)) / denominator
    parts = {
        "r_att": n_att / len(attributes) if attributes else None,
        "r_option": n_opt / len(options) if options else None,
        "r_price": bool(r_price),
        "r_type": r_type,
        "w_att": len(attributes) / denominator,
        "w_option": len(options) / denominator,
        "w_price": 1 / denominator,
        **type_parts,
    }
    return float(reward), parts
