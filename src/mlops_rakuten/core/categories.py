"""The 27 product-type classes of the Rakuten France catalogue.

One table, used by the demo-data generator (class frequencies), evaluation
(axis labels, plots), prediction (French names in the output) and the PR report.
A person reads a class as ``category_label``: "2583 Piscine et spa"; machine-readable
outputs keep the bare code in its own column and add the name beside it.
"""

# prdtypecode -> (French name, rows in the real 84,916-row training set)
CLASSES: dict[int, tuple[str, int]] = {
    10: ("Livres d'occasion / anciens", 3116),
    40: ("Jeux vidéo (import, neufs)", 2508),
    50: ("Accessoires de jeux vidéo", 1681),
    60: ("Consoles de jeux", 832),
    1140: ("Figurines et produits dérivés (pop culture)", 2671),
    1160: ("Cartes à collectionner", 3953),
    1180: ("Jeux de rôle et figurines de jeu", 764),
    1280: ("Jouets, peluches, poupées", 4870),
    1281: ("Jeux de société", 2070),
    1300: ("Modélisme, voitures miniatures, drones", 5045),
    1301: ("Articles bébé et jeux de bar", 807),
    1302: ("Jeux d'extérieur et sport enfant", 2491),
    1320: ("Puériculture", 3241),
    1560: ("Mobilier et literie", 5073),
    1920: ("Linge de maison", 4303),
    1940: ("Épicerie", 803),
    2060: ("Décoration, luminaires", 4993),
    2220: ("Animalerie", 824),
    2280: ("Journaux et magazines anciens", 4760),
    2403: ("Lots de livres, BD et magazines", 4774),
    2462: ("Lots de jeux vidéo et consoles d'occasion", 1421),
    2522: ("Papeterie et fournitures de bureau", 4989),
    2582: ("Mobilier et accessoires de jardin", 2589),
    2583: ("Piscine et spa", 10209),
    2585: ("Outillage, bricolage, jardinage", 2496),
    2705: ("Livres neufs", 2761),
    2905: ("Jeux vidéo PC en téléchargement", 872),
}

CODES: tuple[int, ...] = tuple(sorted(CLASSES))
# Classes listed per product when the caller does not say: `rakuten predict` and the API's /predict alike.
DEFAULT_TOP_K = 3


def category_name(code: int) -> str:
    """French name of a prdtypecode; KeyError for an unknown code."""
    return CLASSES[code][0]


def category_label(code: int) -> str:
    """How a person reads a class: the code, then its French name ("2583 Piscine et spa")."""
    return f"{code} {category_name(code)}"


if __name__ == "__main__":  # the table of docs/prediction.md (make docs-outputs)
    print("| code | category | products in the challenge's training set |\n|---:|---|---:|")
    for code in CODES:
        print(f"| {code} | {category_name(code)} | {CLASSES[code][1]:,} |")
