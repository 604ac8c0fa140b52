"""Fixed text banks: company names, ticket subjects and descriptions, survey comments.

Real sentences in the seven survey languages, so the pipeline meets what real exports carry:
non-ASCII letters (Turkish ı/ş/ğ, Hungarian ő/é/á, Portuguese ç/ã), right-to-left Arabic, and
commas and double quotes inside values. No text contains a newline, so one physical line of a
daily file is always one record.

Banks are picked from with index arithmetic (``Bank.pick``), never per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

LANGUAGES = ("en", "pt", "tr", "ar", "hu", "de", "es")

# --- company names: stems and business words per language (display text, ASCII slug) -------------
NAME_STEMS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("Northwind", "northwind"),
        ("Bluepeak", "bluepeak"),
        ("Silverline", "silverline"),
        ("Oakridge", "oakridge"),
        ("Redwood", "redwood"),
        ("Brightwater", "brightwater"),
        ("Ironbridge", "ironbridge"),
        ("Greenfield", "greenfield"),
        ("Summit", "summit"),
        ("Harbor", "harbor"),
        ("Kestrel", "kestrel"),
        ("Maple & Stone", "maple-stone"),
    ],
    "de": [
        ("Müller", "mueller"),
        ("Schäfer", "schaefer"),
        ("Bergmann", "bergmann"),
        ("Nordstern", "nordstern"),
        ("Weißkopf", "weisskopf"),
        ("Sonnenhof", "sonnenhof"),
        ("Krüger", "krueger"),
        ("Adler", "adler"),
    ],
    "es": [
        ("Montaña Azul", "montana-azul"),
        ("Sol y Mar", "sol-y-mar"),
        ("Robles", "robles"),
        ("Peña", "pena"),
        ("Castillo", "castillo"),
        ("Núñez", "nunez"),
        ("Vega", "vega"),
        ("Río Claro", "rio-claro"),
    ],
    "pt": [
        ("Conceição", "conceicao"),
        ("São Jorge", "sao-jorge"),
        ("Horizonte", "horizonte"),
        ("Araújo", "araujo"),
        ("Ribeiro", "ribeiro"),
        ("Estrela", "estrela"),
        ("Vitória", "vitoria"),
        ("Gonçalves", "goncalves"),
    ],
    "tr": [
        ("Özkan", "ozkan"),
        ("Yıldız", "yildiz"),
        ("Çelik", "celik"),
        ("Güneş", "gunes"),
        ("Doğan", "dogan"),
        ("Şahin", "sahin"),
        ("Akdeniz", "akdeniz"),
        ("Ege", "ege"),
    ],
    "hu": [
        ("Szabó", "szabo"),
        ("Kovács", "kovacs"),
        ("Tóth", "toth"),
        ("Duna", "duna"),
        ("Mátra", "matra"),
        ("Balaton", "balaton"),
        ("Hegyi", "hegyi"),
        ("Fehér", "feher"),
    ],
    "ar": [
        ("النور", "al-noor"),
        ("الأمل", "al-amal"),
        ("الخليج", "al-khaleej"),
        ("الفجر", "al-fajr"),
        ("الرياض", "al-riyadh"),
        ("النخبة", "al-nukhba"),
        ("الواحة", "al-waha"),
        ("السلام", "al-salam"),
    ],
}
NAME_WORDS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("Logistics", "logistics"),
        ("Foods", "foods"),
        ("Systems", "systems"),
        ("Health", "health"),
        ("Builders", "builders"),
        ("Retail", "retail"),
        ("Labs", "labs"),
        ("Engineering", "engineering"),
    ],
    "de": [
        ("Logistik", "logistik"),
        ("Lebensmittel", "lebensmittel"),
        ("Systeme", "systeme"),
        ("Bau", "bau"),
        ("Handel", "handel"),
        ("Technik", "technik"),
    ],
    "es": [
        ("Logística", "logistica"),
        ("Alimentos", "alimentos"),
        ("Sistemas", "sistemas"),
        ("Construcciones", "construcciones"),
        ("Comercial", "comercial"),
        ("Salud", "salud"),
    ],
    "pt": [
        ("Logística", "logistica"),
        ("Alimentos", "alimentos"),
        ("Sistemas", "sistemas"),
        ("Construções", "construcoes"),
        ("Comércio", "comercio"),
        ("Saúde", "saude"),
    ],
    "tr": [
        ("Lojistik", "lojistik"),
        ("Gıda", "gida"),
        ("Sistem", "sistem"),
        ("İnşaat", "insaat"),
        ("Ticaret", "ticaret"),
        ("Sağlık", "saglik"),
    ],
    "hu": [
        ("Logisztika", "logisztika"),
        ("Élelmiszer", "elelmiszer"),
        ("Rendszerek", "rendszerek"),
        ("Építő", "epito"),
        ("Kereskedelmi", "kereskedelmi"),
        ("Egészségügyi", "egeszsegugyi"),
    ],
    "ar": [
        ("للخدمات اللوجستية", "logistics"),
        ("للأغذية", "foods"),
        ("للأنظمة", "systems"),
        ("للمقاولات", "contracting"),
        ("للتجارة", "trading"),
        ("الطبية", "medical"),
    ],
}

# --- helpdesk tickets: (subject, description) per category and language ------------------------------
# "{order}" is replaced by the order id; categories without an order never use it.
TICKET_TEXTS: dict[str, dict[str, list[tuple[str, str]]]] = {
    "delivery": {
        "en": [
            (
                "Order {order} has not arrived",
                "We ordered on time but order {order} is still not here. Please send a tracking update.",
            ),
            (
                "Late delivery for order {order}",
                "Order {order} arrived a week late, and our installation had to be moved.",
            ),
        ],
        "pt": [
            ("Pedido {order} não chegou", "O pedido {order} ainda não foi entregue. Podem verificar o rastreamento?")
        ],
        "tr": [
            (
                "{order} numaralı sipariş gelmedi",
                "{order} numaralı siparişimiz hâlâ teslim edilmedi. Kargo durumunu kontrol eder misiniz?",
            )
        ],
        "ar": [("الطلب {order} لم يصل", "لم يصل الطلب رقم {order} حتى الآن. يرجى إرسال رقم التتبع.")],
        "hu": [
            (
                "A(z) {order} számú rendelés nem érkezett meg",
                "A(z) {order} számú rendelésünk még mindig nem érkezett meg. Kérjük, küldjenek nyomkövetési adatot.",
            )
        ],
        "de": [
            (
                "Bestellung {order} ist nicht angekommen",
                "Unsere Bestellung {order} ist immer noch nicht da. Bitte senden Sie uns die Sendungsverfolgung.",
            )
        ],
        "es": [
            (
                "El pedido {order} no ha llegado",
                "El pedido {order} todavía no ha llegado. ¿Pueden revisar el seguimiento?",
            )
        ],
    },
    "product_quality": {
        "en": [
            ("Damaged items in order {order}", "Several items in order {order} arrived damaged. We need replacements."),
            (
                "Defective units in order {order}",
                'Two units from order {order} are defective: the "power" light never turns on.',
            ),
        ],
        "pt": [("Produtos danificados no pedido {order}", "Vários itens do pedido {order} chegaram danificados.")],
        "tr": [
            ("{order} numaralı siparişte hasarlı ürünler", "{order} numaralı siparişteki bazı ürünler hasarlı geldi.")
        ],
        "ar": [("منتجات تالفة في الطلب {order}", "وصلت عدة منتجات من الطلب {order} تالفة. نحتاج إلى استبدالها.")],
        "hu": [
            (
                "Sérült termékek a(z) {order} számú rendelésben",
                "A(z) {order} számú rendelés több terméke sérülten érkezett.",
            )
        ],
        "de": [
            ("Beschädigte Artikel in Bestellung {order}", "Mehrere Artikel der Bestellung {order} kamen beschädigt an.")
        ],
        "es": [("Productos dañados en el pedido {order}", "Varios artículos del pedido {order} llegaron dañados.")],
    },
    "billing": {
        "en": [
            (
                "Wrong amount on invoice for order {order}",
                "The invoice for order {order} does not match the agreed price.",
            ),
            ("Question about our invoice", "Can you send us a copy of last month's invoice with our VAT number on it?"),
        ],
        "pt": [
            (
                "Valor errado na fatura do pedido {order}",
                "A fatura do pedido {order} não corresponde ao preço combinado.",
            )
        ],
        "tr": [
            (
                "{order} numaralı siparişin faturasında yanlış tutar",
                "{order} numaralı siparişin faturası anlaşılan fiyatla uyuşmuyor.",
            )
        ],
        "ar": [("مبلغ خاطئ في فاتورة الطلب {order}", "فاتورة الطلب {order} لا تطابق السعر المتفق عليه.")],
        "hu": [
            (
                "Hibás összeg a(z) {order} számú rendelés számláján",
                "A(z) {order} számú rendelés számlája nem egyezik a megbeszélt árral.",
            )
        ],
        "de": [
            (
                "Falscher Betrag auf der Rechnung zu Bestellung {order}",
                "Die Rechnung zu Bestellung {order} entspricht nicht dem vereinbarten Preis.",
            )
        ],
        "es": [
            (
                "Importe incorrecto en la factura del pedido {order}",
                "La factura del pedido {order} no coincide con el precio acordado.",
            )
        ],
    },
    "technical": {
        "en": [
            ("Cannot log in to the ordering portal", "Since this morning the portal shows an error right after login."),
            (
                "EDI integration returns errors",
                "Our EDI integration gets timeouts when sending orders, since yesterday.",
            ),
            ("Export to CSV is empty", "The monthly report export downloads an empty file."),
        ],
    },
    "account": {
        "en": [
            ("Add a new user to our account", "Please add our new purchasing manager to the account."),
            ("Change of billing address", "We moved offices; please update our billing address."),
        ],
    },
    "other": {
        "en": [
            ("Catalogue request", "Could you send us the new product catalogue?"),
            ("Volume pricing for next year", "We would like to discuss volume pricing for next year."),
        ],
    },
}

# --- survey comments: language -> sentiment -> topic -> sentences -----------------------------------
COMMENT_TOPICS = ("delivery", "quality", "support", "price", "general")
SENTIMENTS = ("negative", "neutral", "positive")
COMMENTS: dict[str, dict[str, dict[str, list[str]]]] = {
    "en": {
        "negative": {
            "delivery": ["The delivery was three weeks late.", "Delivery took far too long, and nobody told us why."],
            "quality": ["Two of the monitors arrived broken.", "Quality has gone down, several items were defective."],
            "support": ["Support took days to answer a simple question."],
            "price": ["Prices went up again, we are looking at alternatives."],
            "general": ["We decided to switch to another supplier."],
        },
        "neutral": {"general": ["It's okay, nothing special.", "Fine overall, but invoices could be clearer."]},
        "positive": {
            "delivery": ["Fast delivery, everything arrived on time."],
            "support": ["Great support, the team solved our issue in an hour."],
            "general": [
                "Very happy with the service, we will keep ordering.",
                'Good products, fair prices, and the "express" option is worth it.',
            ],
        },
    },
    "pt": {
        "negative": {
            "delivery": ["A entrega atrasou três semanas.", "A entrega demorou demais e ninguém nos avisou."],
            "quality": ["Dois monitores chegaram quebrados."],
            "support": ["O suporte demorou dias para responder."],
            "price": ["Os preços subiram de novo, estamos procurando alternativas."],
            "general": ["Decidimos mudar para outro fornecedor."],
        },
        "neutral": {"general": ["Está bom, nada de especial."]},
        "positive": {
            "delivery": ["Entrega rápida, tudo chegou no prazo."],
            "support": ["Ótimo atendimento, resolveram o problema em uma hora."],
            "general": ["Muito satisfeitos com o serviço, vamos continuar comprando."],
        },
    },
    "tr": {
        "negative": {
            "delivery": ["Teslimat çok geç geldi.", "Sipariş üç hafta gecikti, kimse bilgi vermedi."],
            "quality": ["Ürünlerin ikisi kırık geldi."],
            "support": ["Destek ekibi günlerce cevap vermedi."],
            "price": ["Fiyatlar yine arttı, alternatiflere bakıyoruz."],
            "general": ["Başka bir tedarikçiye geçmeye karar verdik."],
        },
        "neutral": {"general": ["Fena değil, ama daha iyi olabilir."]},
        "positive": {
            "delivery": ["Hızlı teslimat, her şey zamanında geldi."],
            "support": ["Harika destek, sorunumuzu bir saatte çözdüler."],
            "general": ["Hizmetten çok memnunuz, sipariş vermeye devam edeceğiz."],
        },
    },
    "ar": {
        "negative": {
            "delivery": ["التوصيل كان متأخرا جدا.", "تأخر الطلب ثلاثة أسابيع ولم يخبرنا أحد."],
            "quality": ["وصلت بعض المنتجات تالفة."],
            "support": ["خدمة العملاء بطيئة جدا في الرد."],
            "price": ["الأسعار ارتفعت مرة أخرى، ونبحث عن بدائل."],
            "general": ["قررنا الانتقال إلى مورد آخر."],
        },
        "neutral": {"general": ["الخدمة مقبولة ولكن يمكن أن تكون أفضل."]},
        "positive": {
            "delivery": ["توصيل سريع، وصل كل شيء في الموعد."],
            "support": ["دعم رائع، تم حل مشكلتنا خلال ساعة."],
            "general": ["نحن راضون جدا عن الخدمة وسنستمر في الطلب."],
        },
    },
    "hu": {
        "negative": {
            "delivery": ["A szállítás nagyon késett.", "A rendelés három hetet késett, és senki nem szólt."],
            "quality": ["Két monitor törötten érkezett."],
            "support": ["Az ügyfélszolgálat napokig nem válaszolt."],
            "price": ["Az árak megint emelkedtek, alternatívát keresünk."],
            "general": ["Úgy döntöttünk, hogy másik beszállítót választunk."],
        },
        "neutral": {"general": ["Rendben van, de lehetne jobb is."]},
        "positive": {
            "delivery": ["Gyors szállítás, minden időben megérkezett."],
            "support": ["Remek ügyfélszolgálat, egy órán belül megoldották a problémát."],
            "general": ["Nagyon elégedettek vagyunk, továbbra is rendelni fogunk."],
        },
    },
    "de": {
        "negative": {
            "delivery": ["Die Lieferung kam drei Wochen zu spät."],
            "quality": ["Zwei Monitore kamen beschädigt an."],
            "support": ["Der Support hat tagelang nicht geantwortet."],
            "price": ["Die Preise sind schon wieder gestiegen."],
            "general": ["Wir wechseln zu einem anderen Lieferanten."],
        },
        "neutral": {"general": ["Ganz okay, aber ausbaufähig."]},
        "positive": {
            "delivery": ["Schnelle Lieferung, alles kam pünktlich an."],
            "support": ["Toller Support, unser Problem war in einer Stunde gelöst."],
            "general": ["Sehr zufrieden, wir bestellen gerne weiter."],
        },
    },
    "es": {
        "negative": {
            "delivery": ["La entrega llegó tres semanas tarde."],
            "quality": ["Dos monitores llegaron rotos."],
            "support": ["El soporte tardó días en responder."],
            "price": ["Los precios subieron otra vez, buscamos alternativas."],
            "general": ["Decidimos cambiar de proveedor."],
        },
        "neutral": {"general": ["Está bien, pero podría mejorar."]},
        "positive": {
            "delivery": ["Entrega rápida, todo llegó a tiempo."],
            "support": ["Excelente soporte, resolvieron el problema en una hora."],
            "general": ["Muy contentos con el servicio, seguiremos comprando."],
        },
    },
}


_Item = TypeVar("_Item")


@dataclass(frozen=True)
class Bank(Generic[_Item]):
    """Items (texts, or template numbers) grouped by an integer key; ``pick`` draws one per key.

    ``texts`` is the flat list; group ``k`` is ``texts[start[k] : start[k] + count[k]]``.
    Empty groups fall back to ``fallback[k]`` (another group) so every key always yields an item.
    """

    texts: tuple[_Item, ...]
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def from_groups(cls, groups: list[list[_Item]], fallback: list[int]) -> Bank[_Item]:
        texts: list[_Item] = []
        start = np.zeros(len(groups), dtype=np.int64)
        count = np.zeros(len(groups), dtype=np.int64)
        for key, group in enumerate(groups):
            start[key], count[key] = len(texts), len(group)
            texts.extend(group)
        for key, other in enumerate(fallback):
            if count[key] == 0:
                start[key], count[key] = start[other], count[other]
        if np.any(count == 0):
            raise ValueError("a text bank group has neither texts nor a non-empty fallback")
        return cls(tuple(texts), start, count)

    def pick(self, rng: np.random.Generator, keys: np.ndarray) -> np.ndarray:
        """One index into ``texts`` per key, uniformly within the key's group."""
        keys = np.asarray(keys, dtype=np.int64)
        index: np.ndarray = self.start[keys] + (rng.random(len(keys)) * self.count[keys]).astype(np.int64)
        return index


def comment_bank() -> Bank[str]:
    """Comments keyed by ``(language * len(SENTIMENTS) + sentiment) * len(COMMENT_TOPICS) + topic``.

    A missing topic falls back to the same language and sentiment's ``general`` comments.
    """
    groups: list[list[str]] = []
    fallback: list[int] = []
    for language in LANGUAGES:
        for sentiment in SENTIMENTS:
            for topic in COMMENT_TOPICS:
                groups.append(COMMENTS[language][sentiment].get(topic, []))
                fallback.append(len(groups) - 1 - COMMENT_TOPICS.index(topic) + COMMENT_TOPICS.index("general"))
    return Bank.from_groups(groups, fallback)
