"""WebShop's products: the embedded catalog's generator and the :class:`Catalog` the shop and search read.

The embedded catalog (:func:`generate_raw`) is deterministic in its seed and size: products come in
families of near-duplicates (same product type and shared attributes, different brand, options and
price) over five top-level categories, and each product stores its title nouns (``name_nouns``) so the
type reward needs no tagger. It is written as raw records in the upstream ``items_shuffle*.json`` and
``items_ins_v2*.json`` schemas, so it goes through the same cleaning as users' upstream files
(:func:`.tasks.clean_products`); goals, splits and both catalog sources are in :mod:`.tasks`.
"""

from __future__ import annotations

import functools
import hashlib
import random
import string
from collections.abc import Mapping
from typing import Any

from agentgym.error import InvalidArgumentError

#: Bump whenever the generator's output changes (it keys caches and is part of every task definition).
GENERATOR_VERSION = 1

# ----------------------------------------------------------------------------- generator tables
# Each product type line: name | nouns | breadcrumb below the root | price low-high | attributes | option axes
_TYPES = {
    "beauty": (
        "Beauty & Personal Care",
        """
shampoo | shampoo | Hair Care › Shampoo & Conditioner › Shampoos | 6-28 | sulfate free, for dry hair, paraben free, color safe | size_liquid, scent
conditioner | conditioner | Hair Care › Shampoo & Conditioner › Conditioners | 6-26 | for curly hair, silicone free, deep moisturizing | size_liquid, scent
face moisturizer | face moisturizer | Skin Care › Face › Moisturizers | 9-48 | for sensitive skin, fragrance free, oil free, hyaluronic acid | size_liquid
lipstick | lipstick | Makeup › Lips › Lipstick | 5-32 | long lasting, matte finish, cruelty free, highly pigmented | color
nail polish | nail polish | Foot, Hand & Nail Care › Nail Art & Polish › Nail Polish | 4-16 | quick dry, chip resistant, non toxic | color
deodorant | deodorant | Personal Care › Deodorants & Antiperspirants › Deodorant | 4-17 | aluminum free, for sensitive skin, long lasting | scent, pack
body wash | body wash | Skin Care › Body › Body Washes | 5-22 | moisturizing, for dry skin, natural ingredients | size_liquid, scent
sunscreen | sunscreen | Skin Care › Sun › Sunscreens | 8-31 | water resistant, reef safe, broad spectrum | size_liquid
hair dryer | hair dryer | Tools & Accessories › Hair Styling Tools › Hair Dryers | 19-129 | ionic technology, lightweight, fast drying | color
makeup brush set | makeup brush set | Tools & Accessories › Makeup Brushes & Tools › Brush Sets | 7-39 | synthetic bristles, travel size, easy to clean | color
""",
    ),
    "electronics": (
        "Electronics",
        """
wireless earbuds | earbuds | Headphones, Earbuds & Accessories › Earbud Headphones | 15-149 | noise cancelling, long battery life, water resistant, bluetooth 5.3 | color
over ear headphones | ear headphones | Headphones, Earbuds & Accessories › Over-Ear Headphones | 19-299 | noise cancelling, foldable design, long battery life, wireless | color
bluetooth speaker | speaker | Portable Audio & Video › Portable Speakers | 18-199 | waterproof, portable, deep bass, long battery life | color
phone case | phone case | Cell Phones & Accessories › Cases, Holsters & Sleeves › Basic Cases | 6-39 | shockproof, slim fit, wireless charging compatible | color, phone_model
usb c cable | cable | Computers & Accessories › Cables › USB Cables | 5-24 | fast charging, braided nylon, durable | color, length
wall charger | charger | Cell Phones & Accessories › Chargers & Power Adapters › Wall Chargers | 8-45 | fast charging, compact design, dual port | color, pack
wireless keyboard | keyboard | Computers & Accessories › Keyboards, Mice & Accessories › Keyboards | 15-119 | quiet typing, rechargeable, backlit | color
wireless mouse | mouse | Computers & Accessories › Keyboards, Mice & Accessories › Mice | 8-69 | ergonomic design, silent click, rechargeable | color
power bank | power bank | Cell Phones & Accessories › Chargers & Power Adapters › Portable Power Banks | 14-79 | fast charging, compact design, led display | color, capacity
hdmi cable | cable | Television & Video › Accessories › Cables › HDMI Cables | 6-29 | high speed, 4k support, gold plated | length, pack
""",
    ),
    "fashion": (
        "Clothing, Shoes & Jewelry",
        """
t shirt | shirt | Men › Clothing › Shirts › T-Shirts | 8-35 | cotton, short sleeve, machine wash, regular fit | color, size_apparel
running shoes | running shoes | Women › Shoes › Athletic › Running | 29-149 | non slip, breathable, lightweight, arch support | color, size_shoe
hoodie | hoodie | Men › Clothing › Fashion Hoodies & Sweatshirts | 19-69 | fleece lined, long sleeve, machine wash, drawstring | color, size_apparel
summer dress | summer dress | Women › Clothing › Dresses › Casual | 18-69 | short sleeve, flowy, machine wash, pockets | color, size_apparel
jeans | jeans | Men › Clothing › Jeans | 24-89 | slim fit, stretch denim, button closure | color, size_waist
socks | socks | Women › Clothing › Socks & Hosiery › Casual Socks | 6-24 | moisture wicking, cushioned, breathable | color, pack
sandals | sandals | Women › Shoes › Sandals › Flat Sandals | 15-59 | non slip, open toe, memory foam | color, size_shoe
rain jacket | rain jacket | Women › Clothing › Coats, Jackets & Vests › Raincoats | 29-129 | waterproof, hooded, packable, zipper closure | color, size_apparel
backpack | backpack | Luggage & Travel Gear › Backpacks › Casual Daypacks | 19-89 | water resistant, laptop compartment, lightweight | color
wrist watch | wrist watch | Men › Watches › Wrist Watches | 25-249 | stainless steel, water resistant, quartz movement | color
""",
    ),
    "food": (
        "Grocery & Gourmet Food",
        """
ground coffee | coffee | Beverages › Coffee, Tea & Cocoa › Coffee › Ground Coffee | 7-29 | medium roast, organic, fair trade | size_food, roast
green tea | green tea | Beverages › Coffee, Tea & Cocoa › Tea › Green Tea | 5-24 | caffeine free, organic, non gmo | flavor, pack
protein bars | protein bars | Snack Foods › Bars › Protein Bars | 12-39 | gluten free, low sugar, high protein, keto friendly | flavor, pack
potato chips | potato chips | Snack Foods › Chips & Crisps › Potato Chips | 3-19 | gluten free, kettle cooked, non gmo | flavor, size_food
dark chocolate | dark chocolate | Candy & Chocolate › Chocolate › Chocolate Bars | 4-25 | dairy free, fair trade, low sugar, vegan | flavor, pack
olive oil | olive oil | Pantry Staples › Cooking & Baking › Oils › Olive Oil | 9-39 | extra virgin, cold pressed, non gmo | size_liquid
raw honey | honey | Pantry Staples › Jams, Jellies & Sweet Spreads › Honey | 8-34 | unfiltered, organic, non gmo | size_food
almonds | almonds | Snack Foods › Nuts & Seeds › Almonds | 7-29 | roasted, unsalted, non gmo, resealable bag | size_food
pasta | pasta | Pantry Staples › Dried Beans, Grains & Rice › Pasta | 3-21 | whole wheat, gluten free, non gmo | size_food, pack
hot sauce | hot sauce | Pantry Staples › Condiments & Salad Dressings › Hot Sauce | 4-19 | sugar free, vegan, small batch | flavor, pack
""",
    ),
    "furniture": (
        "Home & Kitchen",
        """
office chair | office chair | Furniture › Home Office Furniture › Home Office Chairs | 59-349 | ergonomic design, lumbar support, height adjustable, easy assembly | color
bookshelf | bookshelf | Furniture › Living Room Furniture › Bookcases | 39-229 | easy assembly, solid wood, space saving | color, shelves
coffee table | coffee table | Furniture › Living Room Furniture › Tables › Coffee Tables | 49-299 | storage space, easy assembly, solid wood | color
bed frame | bed frame | Furniture › Bedroom Furniture › Beds, Frames & Bases › Bed Frames | 89-499 | no box spring needed, easy assembly, metal frame | color, size_bed
computer desk | computer desk | Furniture › Home Office Furniture › Home Office Desks | 49-279 | space saving, easy assembly, cable management | color, width
throw pillow covers | pillow covers | Home Décor Products › Decorative Pillows, Inserts & Covers › Throw Pillow Covers | 9-36 | machine washable, hidden zipper, soft velvet | color, size_pillow
area rug | area rug | Home Décor Products › Area Rugs, Runners & Pads › Area Rugs | 29-259 | non slip, machine washable, low pile | color, size_rug
floor lamp | floor lamp | Lighting & Ceiling Fans › Lamps & Shades › Floor Lamps | 29-149 | dimmable, energy efficient, easy assembly | color
storage cabinet | storage cabinet | Furniture › Accent Furniture › Storage Cabinets | 69-319 | adjustable shelves, easy assembly, space saving | color
bar stools | bar stools | Furniture › Game & Recreation Room Furniture › Home Bar Furniture › Barstools | 59-299 | height adjustable, swivel seat, footrest | color, pack
""",
    ),
}

#: Attributes any product of a category may also have.
_SHARED_ATTRIBUTES = {
    "beauty": "easy to use, high quality, dermatologist tested, vegan, travel friendly",
    "electronics": "easy to use, high performance, plug and play, gift ready, compact size",
    "fashion": "easy care, gift ready, all season, high quality, soft material",
    "food": "kosher certified, individually wrapped, family size, gift ready, ready to eat",
    "furniture": "easy clean, sturdy construction, modern design, high quality, eco friendly",
}

#: Option axes, one per line: axis key | upstream option name | values.
_AXES_TABLE = """
color | color | black, white, grey, navy blue, red, pink, green, beige, brown, light blue, purple, gold, silver, rose gold, olive, burgundy, khaki, teal, yellow, orange
size_liquid | size | 1.7 fl oz, 3.4 fl oz, 8 fl oz, 12 fl oz, 16.9 fl oz, 33.8 fl oz
size_food | size | 4 ounce, 8 ounce, 12 ounce, 16 ounce, 24 ounce, 2 pound
size_apparel | size | x-small, small, medium, large, x-large, xx-large
size_shoe | size | 6, 6.5, 7, 7.5, 8, 8.5, 9, 10, 11, 12
size_waist | size | 28w x 30l, 30w x 32l, 32w x 32l, 34w x 32l, 36w x 34l, 38w x 34l
size_bed | size | twin, full, queen, king
size_pillow | size | 16 x 16 inch, 18 x 18 inch, 20 x 20 inch, 22 x 22 inch
size_rug | size | 2 ft x 3 ft, 3 ft x 5 ft, 4 ft x 6 ft, 5 ft x 8 ft, 8 ft x 10 ft
scent | scent | unscented, lavender, citrus, vanilla, coconut, eucalyptus, cucumber melon, sandalwood
flavor | flavor name | original, sea salt, chocolate peanut butter, mango, sriracha, honey lemon, mint, cinnamon, caramel, jalapeno
roast | style | light roast, medium roast, dark roast, decaf
pack | item package quantity | 1, 2, 3, 4, 6, 12
phone_model | style | iphone 15, iphone 15 pro, galaxy s24, galaxy s24 ultra, pixel 8, pixel 8 pro
length | size | 1 ft, 3 ft, 6 ft, 10 ft, 15 ft
capacity | capacity | 5000mah, 10000mah, 20000mah, 26800mah
shelves | style | 3 tier, 4 tier, 5 tier, 6 tier
width | size | 32 inch, 40 inch, 47 inch, 55 inch, 63 inch
"""


def _table(text: str) -> list[list[str]]:
    """The rows of a ``|``-separated table, fields stripped."""
    return [[field.strip() for field in line.split("|")] for line in text.strip().splitlines()]


_AXES: dict[str, tuple[str, str]] = {key: (name, values) for key, name, values in _table(_AXES_TABLE)}

#: Title endings: (text, the nouns it adds to the title).
_TAILS = (
    ("for Women and Men", ("women", "men")),
    ("for Home Office", ("home", "office")),
    ("with Gift Box", ("gift", "box")),
    ("for Travel", ("travel",)),
    ("for Kids and Adults", ("kids", "adults")),
    ("Value Pack", ("value", "pack")),
    ("for Daily Use", ("use",)),
    ("Bundle", ("bundle",)),
    ("for Gym and Outdoor", ("gym",)),
    ("Classic Edition", ("classic", "edition")),
    ("for Bedroom and Living Room", ("bedroom", "living", "room")),
    ("for Family", ("family",)),
    ("", ()),
)

_INSTRUCTION_TEMPLATES = (
    "i need {a} {t}",
    "i am looking for {a} {t}",
    "i want to buy {a} {t}",
    "find me {a} {t}",
    "i'm looking for {a} {t}",
    "i would like {a} {t}",
    "can you find {a} {t} for me",
    "get me {a} {t}",
)
_DESCRIPTION_OPENINGS = (
    "Meet the {brand} {type}, made for everyday life.",
    "The {brand} {type} is built to last.",
    "Upgrade your routine with this {type} from {brand}.",
    "{brand} designed this {type} with care.",
    "A reliable {type} from {brand} that customers come back to.",
)
_DESCRIPTION_LINES = (
    "It is {attr}, so you can rely on it every day.",
    "Customers choose it because it is {attr}.",
    "Thoughtfully made: {attr}.",
    "Every unit is checked to be {attr}.",
    "You will love that it is {attr}.",
)
_BULLET_FILLERS = (
    "Satisfaction guaranteed: contact us with any question and we will help.",
    "Package includes the item and a quick start guide.",
    "Carefully packed to arrive in perfect condition.",
    "Designed and tested by our in-house team.",
    "Makes a thoughtful gift for friends and family.",
)


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


@functools.cache
def _product_types() -> list[dict[str, Any]]:
    types = []
    for category, (root, table) in _TYPES.items():
        for name, nouns, crumbs, price, attributes, axes in _table(table):
            low, high = (float(x) for x in price.split("-"))
            types.append(
                {
                    "category": category,
                    "name": name,
                    "nouns": tuple(nouns.split()),
                    "product_category": " › ".join([root, *[c.strip() for c in crumbs.split("›")]]),
                    "price": (low, high),
                    "attributes": _split_list(attributes),
                    "shared": _split_list(_SHARED_ATTRIBUTES[category]),
                    "axes": _split_list(axes),
                }
            )
    return types


def _brands(rng: random.Random, count: int) -> list[str]:
    onsets = "b c d f g k l m n p r s t v z br cl dr fl gr kr pl st tr".split()
    vowels, codas = "aeiou", ["", "n", "r", "x", "s", "l"]
    names: set[str] = set()
    while len(names) < count:
        syllables = [rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(2, 3))]
        names.add(("".join(syllables) + rng.choice(codas)).capitalize())
    return sorted(names)


def _asin(rng: random.Random, taken: set[str]) -> str:
    alphabet = string.ascii_uppercase + string.digits
    while True:
        asin = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _title_case(text: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in text.split())


def generate_raw(seed: int, num_products: int) -> tuple[list[dict], dict[str, dict]]:
    """The embedded catalog as upstream-schema records: ``(items_shuffle list, items_ins_v2 dict)``.

    Products come in families of 1-4 near-duplicates. About 30% of products carry an instruction
    (``instruction`` plus ``instruction_attributes``), as upstream's instruction file covers a subset.
    """
    if not isinstance(num_products, int) or num_products < 1:
        raise InvalidArgumentError(f"num_products must be a positive int, got {num_products!r}")
    rng = random.Random(f"webshop-catalog-{GENERATOR_VERSION}-{seed}")
    types, brands, taken = _product_types(), _brands(rng, 600), set()
    items: list[dict] = []
    instructions: dict[str, dict] = {}
    while len(items) < num_products:
        kind = rng.choice(types)
        core = rng.sample(kind["attributes"], min(2, len(kind["attributes"])))
        for _ in range(min(rng.randint(1, 4), num_products - len(items))):
            attributes = list(core)
            pool = [a for a in kind["attributes"] + kind["shared"] if a not in attributes]
            attributes += rng.sample(pool, rng.randint(1, 3))
            brand = rng.choice(brands)
            tail, tail_nouns = rng.choice(_TAILS)
            shown = rng.sample(attributes, 2)
            title = f"{brand} {_title_case(' '.join(shown))} {_title_case(kind['name'])}"
            title += f", {tail}" if tail else ""
            options: dict[str, list[dict[str, str]]] = {}
            if rng.random() < 0.85:
                for axis in kind["axes"]:
                    option_name, values = _AXES[axis]
                    values = _split_list(values)
                    chosen = sorted(rng.sample(range(len(values)), rng.randint(2, min(4, len(values)))))
                    options[option_name] = [
                        {"value": _title_case(values[i]) if axis == "color" else values[i], "image": None}
                        for i in chosen
                    ]
            low, high = kind["price"]
            price = round(rng.uniform(low, high), 2)
            pricing = f"${price:.2f}"
            if options and rng.random() < 0.2:
                pricing += f"${price * rng.uniform(1.1, 1.5):.2f}"
            description = " ".join(
                [rng.choice(_DESCRIPTION_OPENINGS).format(brand=brand, type=kind["name"])]
                + [line.format(attr=a) for line, a in zip(rng.sample(_DESCRIPTION_LINES, len(attributes)), attributes)]
            )
            bullets = [f"{a.upper()}: this {kind['name']} is {a}." for a in rng.sample(attributes, len(attributes))]
            bullets += rng.sample(_BULLET_FILLERS, 2)
            asin = _asin(rng, taken)
            items.append(
                {
                    "asin": asin,
                    "name": title,
                    "category": kind["category"],
                    "query": kind["name"],
                    "product_category": kind["product_category"],
                    "full_description": description,
                    "small_description": bullets,
                    "pricing": pricing,
                    "customization_options": options or None,
                    "images": [],
                    "name_nouns": sorted({brand.lower(), *kind["nouns"], *tail_nouns}),
                }
            )
            record = {"attributes": attributes}
            if rng.random() < 0.3:
                wanted = rng.sample(attributes, rng.randint(1, min(3, len(attributes))))
                record["instruction"] = rng.choice(_INSTRUCTION_TEMPLATES).format(
                    a=" and ".join(wanted), t=kind["name"]
                )
                record["instruction_attributes"] = wanted
            instructions[asin] = record
    return items, instructions


# ----------------------------------------------------------------------------- the catalog
class Catalog:
    """Cleaned products, lookup by ASIN, the goals, and the search documents.

    Args:
        products: cleaned products (:func:`.tasks.clean_products`).
        goals: the goals in split order (shuffled: :func:`.tasks.shuffled_goals`); a goal's index is its id.
        source: what the catalog was made from (part of every task definition).
    """

    def __init__(self, products: list[dict], goals: list[dict], source: dict[str, Any]):
        self.products = products
        self.by_asin = {p["asin"]: p for p in products}
        self.goals = list(goals)
        self.source = source

    def document(self, product: Mapping[str, Any]) -> str:
        """Upstream's search document text: title, description, first bullet and options, lower-cased."""
        option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product["options"].items())
        bullets = product["BulletPoints"]
        return " ".join([product["Title"], product["Description"], bullets[0] if bullets else "", option_text]).lower()

    @functools.cached_property
    def documents(self) -> list[str]:
        return [self.document(p) for p in self.products]

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the ASINs and search documents (keys the search index cache)."""
        sha = hashlib.sha256()
        for product, document in zip(self.products, self.documents, strict=True):
            sha.update(product["asin"].encode())
            sha.update(b"\0")
            sha.update(document.encode())
            sha.update(b"\1")
        return sha.hexdigest()
