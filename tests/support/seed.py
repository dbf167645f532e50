"""Facts of the seed newsletter (../shared/seeds/004_…txt) that several tests check against."""

# The seed's 18 HIGHLIGHTS lines, in its order, exactly as written (typographic apostrophes included).
SEED_HIGHLIGHTS = [
    "learn about the work of Kent Stand Up to Racism at our speaker meeting this Tuesday",
    "tell us who you would like as speakers at our 2026 meetings",
    "participate in this year’s Write for Rights Campaign",
    "call on your MP to stand up for the UK’s membership of the European Convention on Human Rights",
    "order and display Amnesty posters calling for the arrest of Benjamin Netanyahu",
    "learn about using personal divestment as a powerful force for change",
    "become better able to talk confidently about refugees with our friends, families and wider communities",
    "support Safe Passage’s campaign for the government to restore refugee family reunion",
    "call on the Prime Minister to mend the UK’s social security system",
    "call on the government to extend and mandate Relationships and Sex Education to sixth form and college "
    "students",
    "attend one of the launches of our Student Action Network’s Defend Dissent Campaign on 25 and 27 "
    "November",
    "support our efforts to strengthen links with our local MPs",
    "join our new Working with Schools Team",
    "volunteer to join our new Social Media Team",
    "buy your Christmas cards and presents from the Amnesty shop",
    "join the online training session on 25 November on when and how to take direct action",
    "support the elimination of violence against women at Human Rights Solidarity’s Stand Up at Trafalgar "
    "Square on 22 November",
    "march with Soroptimist International in Canterbury on 29 November to raise awareness of domestic "
    "violence against women and girls",
]
