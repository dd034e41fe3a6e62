"""A built-in demo dataset in the exact format of the Rakuten France challenge files.

French listings are assembled from per-class vocabularies. Neighbouring classes (books, video games,
toys, home...) share words and some listings are worded like a neighbour's, as in the real catalogue,
so a text model scores well but not perfectly. Yet a product word a shopper knows (livre, piscine,
coussin) points to its own class: a small class is rarely worded like a much bigger one. Like real
listings, some are misfiled, many are terse ("Velkano 340 Noir") and name a product line seen on a
few other listings only, and most end with a seller's shop name: so ``model.C`` matters, too small
missing the rare names and too large learning the shops and the misfiled listings. The same
``rows`` and ``seed`` give byte-identical files on any machine: every draw goes through
``Random.random()`` (the one output Python promises to keep stable across versions), nothing
iterates a set, and the ``csv`` module writes the files.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.categories import CLASSES, CODES
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.core.paths import X_FILE, Y_FILE

Draw = Callable[[], float]  # a Random(seed).random: every draw goes through it
T = TypeVar("T")

X_HEADER, Y_HEADER = ["", "designation", "description", "productid", "imageid"], ["", "prdtypecode"]
MIN_PER_CLASS = 2  # a stratified split needs two rows of every class
MIN_ROWS = MIN_PER_CLASS * len(CODES)
DESCRIBED = 0.65  # share of listings with a description; the others leave it empty
LOOKALIKE = 0.08  # share of listings worded like a neighbouring class
DUPLICATES = 0.005  # share of listings posted twice with the same text
# The next four make model.C matter as on real data (docs/experiments.md): a small C misses the rare
# product-line names, a large one learns the shop names and the misfiled listings.
MISFILED = 0.10  # share of listings filed under a class other than the one their text describes
NAMED = 0.5  # share of titles ending with a product line of their class (_product_lines)
TERSE = 0.35  # share of listings that are a product line and a few generic words, no description
SHOPPED, SHOP_COUNT = 0.9, 6000  # share of titles ending with a seller's shop name; shops in all (_shops)

# Tables below: an unindented line starts an entry, indented lines continue it; ";" separates fields
# and "|" the choices of a field (one listed twice is drawn twice as often). Inside a choice "#" becomes a number, "^" a small number, "@" a year,
# "§" a date and "~" a seller's reference.
#
# Per class: "code: product nouns ; qualifiers, sizes and units ; brands, authors or series".
VOCAB = """
10: Livre Ancien|Die Geschichte der|Das Buch der|Handbuch der|The History of|A Treatise on|Mémoires d'un|Souvenirs de|
    Voyage en|Histoire de la|Traité de|Lettres à|Essai sur|Chroniques du|Der Weg nach|Leben und Werk ; Kunst|
    Familie|Deutschen|England|Provence|Révolution|Marine|Campagne|Médecine|Philosophie|Abbaye|Natur ; Plon @|
    Calmann-Lévy|Librairie Larousse @|Insel Verlag|Oxford University Press|Penguin Books|Rowohlt|Flammarion @|
    Fischer Verlag|Mercure de France|Éditions de Minuit|Hachette @
2705: Livre|Roman|Livre De Cuisine|Livre De Recettes|Guide pratique|Petit manuel|Recueil de poèmes|Le grand livre de|Livre d'activités|Méthode|
    Carnet de recettes|Biographie|Polar|Saga|Le guide complet|Paperback|Taschenbuch ; Cuisine|Jardinage|Yoga|
    Développement personnel|Couture|Photographie|Permaculture|Méditation|Management|Fantasy|Thriller|Self-Help|
    Kochbuch ; Gallimard|Albin Michel|Eyrolles|Dunod|Marabout|Pocket|J'ai Lu|Folio|Larousse|Actes Sud|Michel Lafon
2403: Lot De # Livres|Lot # BD|Lot # Mangas|Collection Complète|Série De # Tomes|Lot De # Romans|Lot # Magazines|
    Ensemble De # Albums|Lot # Revues|Intégrale|Bandes Dessinées ; Astérix|Tintin|Naruto|One Piece|Harry Potter|Spirou|
    Blake Et Mortimer|Picsou Magazine|Les Schtroumpfs|Le Journal De Mickey|Chair De Poule|Dragon Ball ; Dargaud|
    Casterman|Glénat|Dupuis|Kana|Pika|Bibliothèque Verte|Bibliothèque Rose|Folio Junior|Le Lombard
2280: Paris Match N° #|L'Illustration N° #|Le Figaro Littéraire|Le Petit Écho De La Mode|Science Et Vie N° #|
    Historia N° #|L'Équipe Magazine N° #|Elle N° #|Point De Vue N° #|Le Pèlerin N° #|Der Spiegel Nr. #|
    Life Magazine|Sélection Du Reader's Digest ; Spécial Tour De France|Le Général De Gaulle|Mai 68|
    La Conquête Spatiale|Numéro Spécial Noël|Les Années Yé-Yé|Grace De Monaco|La Coupe Du Monde|
    Le Salon De L'auto|La Libération De Paris ; Du §|Du §|Du §|Année @|Numéro D'époque @|Hors-Série Du §
40: Final Quest|Street Racer|Dragon Fury|Shadow Ninja|Football Manager|Super Kart|Zombie Hunter|Galaxy Wars|
    Dark Legends|Tennis Pro|Metal Arena|Jungle Party ; Édition Limitée|Import Jap|Day One|Game Of The Year|
    Version Us|Steelbook|Jeu|Jeu Complet|Jeu Vidéo|Jeu Neuf|Remastered|Deluxe ; PS4|PS4|PS3|Xbox One|Xbox 360|Nintendo Switch|Nintendo Switch|Wii U|PS Vita|3DS
50: Manette Sans Fil|Chargeur De Manette|Câble Hdmi|Câble De Charge|Station De Recharge|Casque Gaming|Volant|Housse De Protection|Support|
    Adaptateur|Batterie Rechargeable|Grip|Film Protecteur|Carte Mémoire|Joystick Arcade|Pédalier ; Compatible|Pour Console|Usb|
    Bluetooth|# mAh|Filaire|Rétroéclairé|Antidérapant|# M|Double Vibration ; PS4|Xbox One|Nintendo Switch|Wii|
    Hori|Thrustmaster|Bigben|Trust|Subsonic|Nacon
60: Console|Console Portable|Console Rétro|Mini Console|Pack Console|Console De Salon|Handheld ; # Go|
    # Jeux Intégrés|Hdmi|Écran # Pouces|Édition Spéciale|Reconditionnée|Slim|Pro|Tbe ; Playstation 4|Xbox One S|
    Nintendo Switch|Nes Classic Mini|Sega Megadrive|Game Boy Advance|3DS XL|Psp
1140: Figurine|Funko Pop|Statuette|Buste|Porte-Clés|Mug|Poster|T-Shirt|Réplique|Peluche Collector|Diorama ; # Cm|
    Vinyl|Résine|Édition Limitée|Numérotée|Pvc|Articulée|Officielle ; Star Wars|Marvel|Dragon Ball Z|Naruto|Zelda|
    Pokémon|Harry Potter|Game Of Thrones|One Piece|Batman|Assassin's Creed|Overwatch
2462: Lot # Jeux|Lot Console + # Jeux|Lot Manettes Et Jeux|Lot Jeux Vidéo|Lot De Jeux Et Accessoires|
    Lot De Cartouches|Lot # Jeux Occasion ; Occasion|Sans Notice|En Boîte|Bon État|Testé|Complet|Loose ; Ps2|
    Gamecube|Nintendo Ds|Wii|Xbox 360|Ps3|Super Nintendo|Game Boy
2905: Jeu Pc|Code De Téléchargement|Clé Steam|Version Numérique|Extension|Season Pass|Jeu À Télécharger|Dlc ; Pc|
    Mac|Windows 10|Steam|Uplay|Origin|Activation|Multilingue ; Galaxy Wars|Farm Simulator|Dark Legends|
    City Builder|Flight Simulator|Total Strategy|Space Colony
1280: Peluche|Poupée|Poupon|Marionnette|Doudou|Animal De La Ferme|Dînette|Marchande En Bois|Déguisement|
    Coffret Maquillage|Ours En Peluche|Maison De Poupée ; Licorne|Lapin|Princesse|Sirène|Pompier|Super Héros|
    Chaton|Dinosaure|Douce|# Cm ; Barbie|Corolle|Playmobil|Vtech|Lego Friends|Disney|Smoby|Hasbro|Mattel|Gipsy
1281: Jeu De Société|Puzzle # Pièces|Jeu De Cartes|Jeu De Plateau|Casse-Tête|Jeu D'ambiance|Jeu De Stratégie|
    Dominos|Jeu De Dés|Escape Game ; Familial|Coopératif|# Joueurs|Apéro|Quiz|Bois|Entre Amis|Classique ; Asmodee|
    Ravensburger|Repos Production|Gigamic|Dujardin|Monopoly|Cluedo|Dobble|Iello|Blue Orange
1300: Voiture Miniature|Drone|Hélicoptère Rc|Maquette|Train Électrique|Voiture Radiocommandée|Avion Rc|
    Camion Miniature|Bateau Rc|Quadricoptère ; 1/43|1/18|1/24|Caméra Hd|Wifi Fpv|2.4 Ghz|# Canaux|Ho 1/87|
    Die Cast|Brushless ; Majorette|Burago|Norev|Solido|Revell|Syma|Dji|Hornby|Jouef|Heller
1301: Chaussons Bébé|Chaussettes Bébé|Body|Babyfoot|Jeu De Fléchettes|Table De Billard|Cible Électronique|Bavoir|
    Queue De Billard|Set De Fléchettes|Flipper ; Naissance|# Mois|Coton Bio|Antidérapant|Pointes Acier|Pliable|
    Professionnel|Brodé ; Winmau|Harrows|Bulls|Petit Bateau|Absorba|Sucre D'orge|Garlando|Cornilleau
1302: Trottinette|Trampoline|Balançoire|Toboggan|Vélo Enfant|Draisienne|Pistolet À Eau|Bac À Sable|Portique|
    Piscine À Balles|Tente De Jeu|Skateboard|Ballon ; Pliable|# Roues|Lumineuses|Extérieur|Jardin|# Pouces|Ø # Cm|
    Réglable ; Oxelo|Hudora|Bestway|Globber|Smoby|Nerf|Spalding|Wilson
1320: Poussette|Siège Auto|Lit Parapluie|Chaise Haute|Porte-Bébé|Transat|Baignoire Bébé|Sac À Langer|Tour De Lit|
    Babyphone|Matelas À Langer|Biberon|Gigoteuse|Parc Bébé ; Groupe 0+/1|Isofix|Pliable|Naissance|Réglable|
    Évolutif|# À # Mois|Anti-Colique ; Bébé Confort|Chicco|Maxi-Cosi|Babymoov|Tommee Tippee|Avent|Graco|Béaba|
    Safety First
1560: Matelas|Sommier|Canapé|Armoire|Commode|Table Basse|Chaise|Buffet|Lit Double|Étagère|Bureau|Meuble Tv|
    Tête De Lit|Fauteuil ; 140 x 190 cm|160 x 200 cm|Mémoire De Forme|Chêne Massif|Pin|Mdf|# Tiroirs|# Portes|
    Convertible|Velours|Métal|Laqué ; Conforama|Vente-Unique|Dunlopillo|Simmons|Maisons Du Monde|Habitat|Alinéa|
    Bestmobilier
1920: Housse De Couette|Parure De Lit|Drap Housse|Taie D'oreiller|Oreiller|Couette|Plaid|Coussin|Rideau|Nappe|
    Serviette De Bain|Housse De Coussin|Jeté De Canapé ; 240 x 220 cm|140 x 200 cm|65 x 65 cm|45 x 45 cm|
    100§ Coton|Percale|Microfibre|Lin Lavé|Polaire|Imprimé|Satin|# Fils ; Tradilinge|Blanc Des Vosges|Today|Dodo|
    Essix|Linvosges|Home Maison
2060: Lampe|Suspension|Applique Murale|Lampadaire|Guirlande Lumineuse|Miroir|Vase|Cadre Photo|Horloge Murale|
    Sticker Mural|Bougie Parfumée|Tableau Déco|Abat-Jour|Diffuseur ; Led|E27|# W|Rétro|Industriel|Verre|Céramique|
    Bohème|Vintage|Rotin|Usb ; Philips|Atmosphera|Maisons Du Monde|Eglo|Lexon|Lucide|Osram
2582: Salon De Jardin|Parasol|Chaise Longue|Hamac|Table De Jardin|Tonnelle|Pergola|Balancelle|Coussin D'extérieur|
    Bain De Soleil|Abri De Jardin|Fauteuil De Jardin|Voile D'ombrage ; Résine Tressée|Aluminium|Teck|Acier|
    Anti-Uv|Déporté|# Places|Imperméable|Pliant|Inclinable ; Hespéride|Ezpeleta|Grosfillex|Vidaxl|Outsunny|Keter|
    Lafuma|Trigano
2583: Piscine Hors Sol|Pompe De Filtration|Filtre À Sable|Robot Piscine|Bâche À Bulles|Liner|Spa Gonflable|
    Échelle Piscine|Skimmer|Chlore|Cartouche Filtrante|Pompe À Chaleur|Épuisette|Bâche D'hivernage|Douche Solaire|
    Balai Aspirateur ; Ø # M|# x # x # M|Tubulaire|Autoportante|# m³/h|Galets 250 g|# Places|Acier|Ovale|Ronde ;
    Intex|Bestway|Zodiac|Dolphin|Gre|Hayward|Kokido|Lay-Z-Spa|Astralpool
2585: Perceuse Visseuse|Tondeuse|Taille-Haie|Scie Circulaire|Coffret D'outils|Tournevis|Meuleuse|Souffleur|Tuyau D'arrosage|
    Nettoyeur Haute Pression|Sécateur|Débroussailleuse|Ponceuse|Escabeau|Établi ; # V|# W|Sans Fil|Lithium|
    # Pièces|Thermique|Électrique|# Bars|Avec Batterie|Brushless ; Bosch|Makita|Black & Decker|Ryobi|Stanley|
    Kärcher|Dewalt|Gardena|Einhell|Parkside
1160: Carte Pokémon|Carte Yu-Gi-Oh|Carte Magic|Booster|Display|Lot De # Cartes|Carte Panini|Deck|Coffret Dresseur|
    Carte Holo|Album Panini|Carte Dragon Ball Super ; Holo|Reverse|Ex|Gx|Vmax|Commune|Ultra Rare|# Pv|Secret Rare|
    Première Édition ; Pokémon|Yu-Gi-Oh!|Magic The Gathering|Panini Foot|Topps|Épée Et Bouclier|Soleil Et Lune
1180: Figurine Warhammer|Livre De Règles|Dés De Jeu De Rôle|Set De Dés|Écran Du Meneur|Décor Wargame|
    Boîte D'armée|Peinture Citadel|Supplément De Règles|Figurines Métal|Kit De Démarrage|Bataillon ; 28 mm|Space Marine|Orks|Elfes|
    Nains|Non Peint|À Monter|Polyèdres|Résine|Socle ; Games Workshop|Warhammer 40k|Age Of Sigmar|
    Donjons Et Dragons|Pathfinder|L'appel De Cthulhu|Infinity
1940: Café En Grains|Thé Vert|Chocolat Noir|Capsules|Biscuits|Miel|Confiture|Épices|Huile D'olive|Bonbons|Pâtes|
    Sirop|Infusion|Sauce ; Bio|# g|# ml|1 kg|Équitable|Sans Gluten|Arabica|Artisanal|Aux Fruits|Vegan ; Nespresso|
    Lavazza|Lindt|Bonne Maman|Haribo|Kusmi Tea|Carte Noire|Twinings|Ducros
2220: Croquettes|Arbre À Chat|Niche|Collier|Laisse|Litière|Aquarium|Cage|Griffoir|Panier Pour Chien|Harnais|
    Gamelle|Jouet Pour Chien|Fontaine À Eau ; Pour Chien|Pour Chat|Lapin|Oiseau|Poisson|Antipuces|# kg|Réglable|Taille M|
    Chiot|Chaton ; Royal Canin|Purina|Trixie|Zolux|Ferplast|Hill's|Flamingo|Kong
2522: Cahier|Stylo Bille|Classeur|Agenda|Carnet De Notes|Feutres|Trousse|Enveloppes|Ramette Papier|
    Cartouche D'encre|Calculatrice|Surligneurs|Bloc-Notes|Étiquettes ; A4|A5|Grands Carreaux|Ligné|# Pages|
    # Feuilles|Pointillé|Spirale|Recharge|Rigide|Personnalisé ; Clairefontaine|Bic|Oxford|Exacompta|Pilot|Stabilo|
    Moleskine|Canson|Hp|Maped
"""

# Families of look-alike classes: "codes: shared words ; description sentences ; spec lines ; title shapes".
# In sentences and shapes a lone letter is a slot: N noun, Q qualifier, B brand, G family word,
# X generic word, C colour.
FAMILIES = """
10 2280 2403 2705: Ouvrage|Édition|Tome|Volume|Collection|Broché|Relié|Illustré|Occasion|Revue|Numéro ;
    Bon état général, couverture légèrement frottée.|Ouvrage complet de toutes ses pages.|Quelques annotations au
    crayon en marge.|Un classique à redécouvrir dans une édition soignée.|Texte intégral accompagné de notes et
    d'illustrations.|Expédié sous enveloppe bulle renforcée. ; Éditeur : B|Année : @|Nombre de pages : #|
    Langue : Français|État : très bon état|Format : # x # cm ;
    N Q - B G|N Q, B - G X|G : N Q - B @|N - Q G B|N Q Q - B X
40 50 60 1140 2462 2905: Jeu Vidéo|Gaming|Import|Version Française|Neuf Sous Blister|Pal|Collector|Rétro|
    Officiel|Gamer ; Jeu testé et fonctionnel.|Livré avec sa boîte et sa notice.|Compatible avec toutes les
    versions de la console.|Plongez dans une aventure épique.|Affrontez vos amis en multijoueur local ou en ligne.|
    Produit officiel sous licence. ; Plateforme : B|PEGI : ^|Langue : multilingue|Modèle : Q|Zone : PAL|
    Référence : ~ ; N Q B - G X Q|N - B - Q C G|N B Q X G|G N B C Q X|N Q B Q G
1280 1281 1300 1301 1302 1320: Jouet|Enfant|Ludique|Cadeau|Fille|Garçon|Dès ^ Ans|Éducatif|Coloré|Mixte ; Idéal pour
    éveiller la curiosité des plus petits.|Conforme aux normes européennes de sécurité CE.|Un cadeau parfait pour
    Noël ou un anniversaire.|Attention : ne convient pas aux enfants de moins de 36 mois.|Favorise la motricité et
    l'imagination.|Piles non incluses. ; Âge : dès ^ ans|Matière : Q|Dimensions : # x # cm|Couleur : C|Marque : B|
    Poids : # g ; N Q B C G X|B N Q - X C Q|N Q C G X B|N B Q ^ G|G N Q B C Q
1560 1920 2060 2582: Maison|Intérieur|Design|Moderne|Salon|Chambre|Déco|Scandinave|Élégant|Contemporain ;
    Apportez une touche d'élégance à votre intérieur.|Facile à monter, notice incluse.|Entretien facile, lavable en
    machine.|S'adapte à tous les styles de décoration.|Finitions soignées et matériaux de qualité.|Livré en colis,
    montage simple en quelques minutes. ; Dimensions : # x # x # cm|Matière : Q|Couleur : C|Poids : ^ kg|
    Garantie : ^ ans|Référence : ~ ; N Q C B G Q|N G Q C - X B|B - N Q C Q|N Q X C G B|N Q Q - G B C
2583 2585: Jardin|Extérieur|Professionnel|Entretien|Robuste|Kit|Accessoire|Pro|Haute Qualité ; Conçu pour un usage
    intensif en extérieur.|Installation rapide sans outil spécifique.|Livré avec tous les accessoires nécessaires.|
    Résiste aux UV et aux intempéries.|Pièce d'origine, montage facile.|Consultez la notice avant la première
    utilisation. ; Puissance : # W|Tension : # V|Débit : # m³/h|Dimensions : # x # cm|Poids : ^ kg|
    Garantie : ^ ans ; N Q B G C Q|B N Q - X G C|N Q G C Q B|N B Q Q Réf ~
1160 1180: Carte|Cartes|Jeu|Collection|Rare|Vf|Booster|Mint|Foil|Officiel ; Carte en excellent état, sortie de
    booster.|Envoi protégé sous pochette rigide.|Idéal pour compléter votre collection.|Compatible avec les règles
    officielles du jeu.|Pour les joueurs débutants comme confirmés. ; Édition : Q|Langue : français|État : neuf|
    Rareté : rare|Série : B|Quantité : # ; N Q B G X|N B - Q X G|Lot N Q B Q|N Q - G B X
1940 2220 2522: Lot|Pack|Pratique|Quotidien|Format|Maxi|Économique ; Produit de qualité à petit prix.|
    Conditionnement pratique pour un usage quotidien.|Stock limité, commandez dès maintenant.|Retrouvez toute
    notre gamme dans notre boutique. ; Contenance : # ml|Poids : # g|Quantité : #|Marque : B|Format : Q|
    Référence : ~ ; N Q B G C X|B N Q - X Q|N Q C G B|G N B Q X
"""
WORDS = (
    "Neuf|Pas Cher|Promo|Top|Qualité|Original|Nouveau|Premium|Grand|Petit|Lot|Pack|Set|Cadeau|Mini|Xl|"
    "Livraison Gratuite|Garantie|Import|Soldes|France"
).split("|")
COLOURS = (
    "Noir|Blanc|Rouge|Bleu|Vert|Jaune|Rose|Gris|Beige|Marron|Orange|Violet|Argent|Doré|Multicolore|"
    "Bleu Marine|Anthracite|Turquoise"
).split("|")
NUMBERS = "2|3|4|5|6|8|10|12|15|16|20|24|25|30|32|40|45|50|60|64|75|80|100|120|150|200|250|300|400|500".split("|")
OPENINGS = [
    s.split()
    for s in (
        "Découvrez N Q de la marque B.|N Q B, G et X.|Ce N Q C saura vous séduire.|B présente N Q : un article G "
        "et X.|N Q - B. Article X, coloris C.|Vends N Q B en très bon état."
    ).split("|")
]
CLOSINGS = (
    "Livraison rapide et soignée.|N'hésitez pas à consulter nos autres annonces.|Paiement sécurisé.|"
    "Photos non contractuelles.|Article expédié sous 48 h.|Pour toute question, contactez-nous.|"
    "Satisfaction garantie & retour gratuit sous 30 jours."
).split("|")
# Many sellers' tools export descriptions HTML-escaped.
ENTITIES = str.maketrans(
    {
        char: f"&{name};"
        for char, name in zip(
            "&'éèêàâçôîùûëïÉÂÀ°³äöØ",
            (
                "amp #39 eacute egrave ecirc agrave acirc ccedil ocirc icirc ugrave ucirc euml iuml Eacute Acirc Agrave deg sup3 "
                "auml ouml Oslash"
            ).split(),
            strict=True,
        )
    }
)
# What each marker becomes (see the table notes above).
MARKERS: dict[str, Callable[[Draw], str]] = {
    "#": lambda rand: _pick(rand, NUMBERS),
    "^": lambda rand: str(1 + int(rand() * 16)),
    "@": lambda rand: str(1890 + int(rand() * 125)),
    "§": lambda rand: f"{1 + int(rand() * 28):02d}/{1 + int(rand() * 12):02d}/{1920 + int(rand() * 95)}",
    "~": lambda rand: f"{_pick(rand, 'ABCDEFGHKLMPRSTVX')}{_pick(rand, 'ABDELMRSTX')}-{100 + int(rand() * 99900)}",
}


def _table(text: str) -> list[tuple[list[int], list[list[str]]]]:
    """Parse a table into (codes, fields), each field a list of choices."""
    entries = []
    for line in text.strip().replace("\n    ", " ").splitlines():
        head, _, body = line.partition(": ")
        fields = [[choice.strip() for choice in field.split("|")] for field in body.split(" ; ")]
        entries.append(([int(code) for code in head.split()], fields))
    return entries


def _pools() -> dict[int, dict[str, list]]:
    """Per class, the choices behind each slot letter; the family's parts are shared by its members."""
    families = {code: entry for entry in _table(FAMILIES) for code in entry[0]}
    pools: dict[int, dict[str, list]] = {}
    for (code,), (nouns, qualifiers, brands) in _table(VOCAB):
        members, (words, sentences, specs, shapes) = families[code]
        pools[code] = {
            "N": nouns,
            "Q": qualifiers,
            "B": brands,
            "G": words,
            "X": WORDS,
            "C": COLOURS,
            "sentences": [s.split() for s in sentences],
            "specs": [s.split() for s in specs],
            "shapes": [s.split() for s in shapes],
            "peers": [m for m in members if m != code],
        }
    if sorted(pools) != list(CODES):
        raise AssertionError("every class needs a vocabulary and a family")
    return pools


POOLS = _pools()


def class_counts(rows: int) -> dict[int, int]:
    """Rows per class: proportional to the real counts (largest remainder), at least 2 each, summing to ``rows``."""
    total = sum(count for _, count in CLASSES.values())
    quota = {code: rows * CLASSES[code][1] for code in CODES}
    counts = {code: quota[code] // total for code in CODES}
    for code in sorted(CODES, key=lambda c: (-(quota[c] % total), c))[: rows - sum(counts.values())]:
        counts[code] += 1
    for code in CODES:
        while counts[code] < MIN_PER_CLASS:
            largest = max(CODES, key=lambda c: (counts[c], -c))
            counts[largest] -= 1
            counts[code] += 1
    return counts


def _pick(rand: Draw, items: Sequence[T]) -> T:
    return items[int(rand() * len(items))]


SYLLABLES = (
    "ka|lo|mi|ra|ven|tor|sel|ix|no|vu|ba|zen|dri|pol|qua|ter|ly|mon|sa|fi|gor|ne|tu|al|vex|ri|do|kan|mel|pra"
).split("|")
SHOP_SUFFIXES = ["shop", "store", "deals", "market", "boutik", "discount"]


def _invented_word(rand: Draw) -> str:
    return "".join(_pick(rand, SYLLABLES) for _ in range(2 + int(rand() * 2))).capitalize()


def _product_lines(code: int) -> list[str]:
    """Invented product-line names of a class ("Velkano 340"), more for a bigger class.

    Each appears on ten to twenty listings, as a real catalogue's model names do: a model fitted with a
    small C hardly learns them. Drawn from a generator of their own, so they do not depend on the rows.
    """
    rand = random.Random(code).random
    names = []
    for _ in range(5 + CLASSES[code][1] // 120):
        word = _invented_word(rand)
        names.append(f"{word} {10 * (1 + int(rand() * 99))}" if rand() < 0.5 else word)
    return names


def _shops() -> list[str]:
    """Invented seller shop names ("Miravenstore"), which sellers append to titles in every class.

    Each appears on two or three listings of unrelated classes: a model fitted with a large C learns
    them as if they meant a class, and misplaces the terse listings they end.
    """
    rand = random.Random(0).random
    return [_invented_word(rand) + _pick(rand, SHOP_SUFFIXES) for _ in range(SHOP_COUNT)]


PRODUCT_LINES = {code: _product_lines(code) for code in CODES}
SHOPS = _shops()


def _fill(rand: Draw, tokens: list[str], pools: dict[str, list]) -> str:
    """Expand the slot letters of a shape or sentence, then the markers inside the chosen words."""
    out = []
    for token in tokens:
        pool = pools.get(token[0]) if len(token) == 1 or token[1:] in (".", ",", ":") else None
        if pool is not None and token[0] == "Q" and rand() < 0.33:  # a third are the family's shared words
            pool = pools["G"]
        out.append(token if pool is None else _pick(rand, pool) + token[1:])
    text = " ".join(out)
    for marker, draw in MARKERS.items():
        while marker in text:
            text = text.replace(marker, draw(rand), 1)
    return text


def _some(rand: Draw, items: list[T], low: int) -> list[T]:
    """A run of ``low`` or more consecutive items from a random start, so none repeats."""
    start, count = int(rand() * len(items)), low + int(rand() * (len(items) - low + 1))
    return [items[(start + i) % len(items)] for i in range(count)]


def _description(rand: Draw, pools: dict[str, list]) -> str:
    opening = _fill(rand, _pick(rand, OPENINGS), pools)
    body = " ".join(_fill(rand, tokens, pools) for tokens in _some(rand, pools["sentences"], 1))
    specs = [_fill(rand, tokens, pools) for tokens in _some(rand, pools["specs"], 2)]
    closing = _pick(rand, CLOSINGS)
    layout = int(rand() * 5)
    if layout == 0:
        text = (
            f"<p>{opening} {body}</p><p><b>Caractéristiques :</b></p><ul>"
            + "".join(f"<li>{spec}</li>" for spec in specs)
            + f"</ul><p>{closing}</p>"
        )
    elif layout == 1:
        text = (
            f"{opening}<br />{body}<br /><br /><b>Caractéristiques</b><br />"
            + "<br />".join(f"- {spec}" for spec in specs)
            + f"<br /><br />{closing}"
        )
    elif layout == 2:
        text = f"<p>{opening}</p><p>{body}</p><p>{' / '.join(specs)}</p><p><i>{closing}</i></p>"
    else:  # plain text, as typed by hand
        text = " ".join([opening, body, *specs, closing])
    return text.translate(ENTITIES) if rand() < 0.5 else text


def _listing(rand: Draw, code: int, labels: list[int]) -> tuple[str, str]:
    terse = rand() < TERSE
    if rand() < MISFILED:  # filed under the wrong class: the text is that of another listing's class
        code = _pick(rand, labels)
    shop = f" - {_pick(rand, SHOPS)}" if rand() < SHOPPED else ""
    if terse:  # "Velkano 340 Noir Promo": the product line is the only clue
        words = [_pick(rand, PRODUCT_LINES[code]), _pick(rand, WORDS), _pick(rand, COLOURS)]
        return " ".join(words[: 2 + int(rand() * 2)]) + shop, ""
    pools = POOLS[code]
    if rand() < LOOKALIKE:  # an ambiguous listing, worded like a neighbouring class ...
        peer = _pick(rand, pools["peers"])
        # ... rarely one much smaller than itself: a big class would drown the small one's words
        # (2583 pools lent "perceuse" 40 % of its listings), and a shopper's words would point astray.
        if rand() < min(1.0, CLASSES[peer][1] / CLASSES[code][1]):
            pools = POOLS[peer]
    title = _fill(rand, _pick(rand, pools["shapes"]), pools)
    if rand() < NAMED:
        title = f"{title} {_pick(rand, PRODUCT_LINES[code])}"
    if rand() < 0.45:  # many sellers capitalise every word
        title = title.title()
    title += shop
    return title, _description(rand, pools) if rand() < DESCRIBED else ""


def generate(rows: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """The data rows (no header) of the two files, all strings: ``[index, designation, description,
    productid, imageid]`` and ``[index, prdtypecode]``. InputError for too few rows or a bad seed."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < MIN_ROWS:
        raise InputError(
            f"demo data: rows={rows!r}; expected an integer >= {MIN_ROWS} "
            f"({MIN_PER_CLASS} rows for each of the {len(CODES)} classes, for a stratified split)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"demo data: seed={seed!r}; expected a non-negative integer")
    rand = random.Random(seed).random
    counts = class_counts(rows)
    labels = [code for code in CODES for _ in range(counts[code])]
    texts = [_listing(rand, code, labels) for code in labels]
    for _ in range(max(1, round(rows * DUPLICATES))):  # a listing posted twice: same text, same class
        i = 1 + int(rand() * (rows - 1))
        while labels[i - 1] != labels[i]:
            i = 1 + int(rand() * (rows - 1))
        texts[i] = texts[i - 1]
    order = list(range(rows))
    for i in range(rows - 1, 0, -1):  # Fisher-Yates on random() alone, so the order never depends on the version
        j = int(rand() * (i + 1))
        order[i], order[j] = order[j], order[i]
    used: set[int] = set()
    x_rows, y_rows = [], []
    for index, k in enumerate(order):
        ids = []
        for low, span in ((200_000, 4_250_000_000), (500_000, 1_330_000_000)):  # productid, imageid
            value = low + int(rand() * span)
            while value in used:
                value = low + int(rand() * span)
            used.add(value)
            ids.append(str(value))
        x_rows.append([str(index), *texts[k], *ids])
        y_rows.append([str(index), str(labels[k])])
    return x_rows, y_rows


def write_demo_data(out_dir: Path, rows: int, seed: int) -> None:
    """Write ``X_train_update.csv`` and ``Y_train_CVw08PX.csv`` into ``out_dir``, each atomically."""
    x_rows, y_rows = generate(rows, seed)
    for name, header, data in ((X_FILE, X_HEADER, x_rows), (Y_FILE, Y_HEADER, y_rows)):
        with atomic_open(Path(out_dir) / name) as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(data)
