"""The fixed English prose every run speaks: one text per input size, and short phrases for the memory run."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AGENT_BARGE_IN",
    "AGENT_PHRASE",
    "AGENT_REPLIES",
    "AGENT_SHORT_REPLY",
    "LISTENER_TEXTS",
    "MEMORY_PHRASES",
    "QUALITY_SENTENCES",
    "QUICK_LISTENER_TEXTS",
    "QUICK_TEXTS",
    "TEXTS",
    "Size",
]

# One sentence, short enough to be a single chunk for the server's planner and for KPipeline alike,
# so that its time to first audio compares like with like (figure 4 relies on it).
SHORT = "Clara walked home along the river at dusk."

MEDIUM = (
    "The old lighthouse had not been lit in forty years, yet every evening the keeper's grandson climbed "
    "the spiral stairs to wind the clock. He said the building deserved to know the time, even if the ships "
    "no longer needed it. From the gallery he could see the fishing boats coming home, their lamps swinging "
    "in the swell, and the long line of the coast fading from green to grey as the light went."
)

LONG = (
    "When the library reopened after the flood, the first thing people noticed was the smell. It was not "
    "damp, as everyone had feared, but something closer to cedar and fresh paint, as if the building had "
    "decided to start over rather than simply recover. The librarians had spent the winter drying books one "
    "page at a time, hanging them on lines strung between the shelves like laundry in a narrow street. "
    "Volunteers came every morning with hair dryers and patience, and by spring most of the collection had "
    "been saved. The children's room was the exception. Its lower shelves had stood in water for three days, "
    "and nearly every picture book on them was lost. Instead of replacing them from a catalogue, the head "
    "librarian asked the town to bring in the books they remembered from their own childhoods. Within a week "
    "the tables were covered with worn paperbacks, school prizes with inscriptions on the flyleaf, and "
    "hardbacks whose spines had been mended with tape more than once. Some of them were valuable, but most "
    "were simply loved. Each donor wrote a short note explaining why the book mattered, and the notes were "
    "tucked inside the front covers. Now, when a child borrows a story about a bear who cannot sleep or a "
    "girl who builds a boat from a bathtub, they also borrow a stranger's memory of reading it for the first "
    "time. The librarians say the returned books often come back with new notes added beneath the old ones, "
    "written in careful pencil by readers who wanted to say that they had loved it too."
)

Size = str  # "short", "medium" or "long"

TEXTS: Mapping[Size, str] = {"short": SHORT, "medium": MEDIUM, "long": LONG}

# `--quick` speaks shorter texts, so that a run fits in two minutes. Its long text is three lines,
# which Kokoro synthesizes as three chunks: abandoning it after the first audio still leaves work
# behind for figure 6 to measure.
QUICK_TEXTS: Mapping[Size, str] = {
    "short": SHORT,
    "medium": "The lighthouse was dark for years, yet its clock still ran.",
    "long": "The library reopened in May.\nIt smelled of cedar.\nChildren came back.",
}

# The memory run's requests: a word or two each (200 of them must fit the time budget), every format.
MEMORY_PHRASES: tuple[str, ...] = (
    "Yes.",
    "Thank you.",
    "Okay.",
    "Good night.",
    "Hello.",
    "Of course.",
    "Ready.",
    "See you.",
)

# Figures 7-9: eight listeners, eight different texts of about 250 characters each.
LISTENER_TEXTS: tuple[str, ...] = (
    "The ferry left the harbour a few minutes late, because a van full of oranges had to be pushed "
    "aboard by hand. Nobody complained. The passengers leaned on the rail and watched the town shrink "
    "into a line of white houses under the hill.",
    "Our new kitchen timer is shaped like a tomato and rings so loudly that the dog hides under the stairs. "
    "We keep meaning to buy a quieter one, but every time we see it sitting on the counter it makes us "
    "smile, so it stays.",
    "At the edge of the village there is a stone bridge that nobody remembers building. The river under "
    "it is shallow enough to cross on foot in summer, and children race paper boats from one side to the "
    "other until it gets dark.",
    "The museum opened a small room for clocks last spring. Every hour the whole room chimes at once, a "
    "little out of step, and visitors stand very still in the middle of it, as if they were waiting for "
    "a train that is about to arrive.",
    "My grandmother kept her recipes in a shoebox, written on envelopes, receipts and the backs of "
    "postcards. None of them had quantities. They said things like enough flour, a good spoon of butter, "
    "and bake until it smells right.",
    "The night bus follows the same route as the day bus, but it feels like a different city. The streets "
    "are wide and empty, the shop windows glow, and the driver hums along to a radio station that plays "
    "only songs about the sea.",
    "Every autumn the town holds a competition for the largest pumpkin. Last year the winner was so heavy "
    "that it took six people and a borrowed forklift to move it onto the scales, and the crowd cheered "
    "as if it had run a marathon.",
    "On the top floor of the library there is a reading room with a glass ceiling. When it rains, the "
    "sound is like a thousand fingers tapping on a table, and people who came to study end up simply "
    "listening with their eyes closed.",
)

# The quick run's listeners: the first eight words of each story (bursts and arrivals last as long as
# the audio they ask for; the quick run checks the shape, not the numbers).
QUICK_LISTENER_TEXTS: tuple[str, ...] = tuple(
    " ".join(text.split()[:8]).rstrip(",") + "." for text in LISTENER_TEXTS
)

# The quality table's sentences (as written, and as PocketSphinx should hear them): one-word answers and
# greetings (where edge silence is most of the clip), questions, numbers, lists, quotes, abbreviations and
# a paragraph.
QUALITY_SENTENCES: tuple[tuple[str, str], ...] = (
    ("Yes.", "yes"),
    ("No.", "no"),
    ("Thanks!", "thanks"),
    ("Hello there!", "hello there"),
    ("Absolutely, I'd be happy to.", "absolutely i'd be happy to"),
    ("Good morning, how can I help you today?", "good morning how can i help you today"),
    ("Is the meeting at three or at four?", "is the meeting at three or at four"),
    ("Wait... are you serious?", "wait are you serious"),
    (
        "Why would anyone leave the door open in the middle of winter?",
        "why would anyone leave the door open in the middle of winter",
    ),
    ("Ready? Set. Go!", "ready set go"),
    (
        "The total comes to $1,249.99, including tax.",
        "the total comes to one thousand two hundred forty nine dollars and ninety nine cents including tax",
    ),
    (
        "Call me at 555-0123 after 6 p.m. on Friday.",
        "call me at five five five zero one two three after six p m on friday",
    ),
    (
        "In 1969, Apollo 11 landed on the Moon, 384,400 kilometers away.",
        "in nineteen sixty nine apollo eleven landed on the moon three hundred eighty four thousand four "
        "hundred kilometers away",
    ),
    (
        "Our revenue grew 12.5% year over year, beating expectations.",
        "our revenue grew twelve point five percent year over year beating expectations",
    ),
    (
        "Dr. Smith arrives on Jan. 5th at 10:30 a.m.",
        "doctor smith arrives on january fifth at ten thirty a m",
    ),
    (
        "You'll need eggs, flour, sugar, butter, and a pinch of salt.",
        "you'll need eggs flour sugar butter and a pinch of salt",
    ),
    (
        "First, open the app; second, tap Settings; third, choose Privacy.",
        "first open the app second tap settings third choose privacy",
    ),
    (
        "Please remember to bring your passport, your ticket, and a pen.",
        "please remember to bring your passport your ticket and a pen",
    ),
    (
        'She whispered, "Don\'t let go," and the train pulled away.',
        "she whispered don't let go and the train pulled away",
    ),
    (
        "Error 404: the page you requested could not be found.",
        "error four oh four the page you requested could not be found",
    ),
    (
        "Turn left at the second light, then keep going for about two miles.",
        "turn left at the second light then keep going for about two miles",
    ),
    ("The quick brown fox jumps over the lazy dog.", "the quick brown fox jumps over the lazy dog"),
    (
        "It was, without a doubt, the best pizza I have ever eaten.",
        "it was without a doubt the best pizza i have ever eaten",
    ),
    (
        "The old lighthouse stood at the edge of the cliff for more than a century. Every night its beam "
        "swept across the dark water, warning sailors away from the rocks below. When the keeper finally "
        "retired, the town voted to keep the light burning, and volunteers took turns climbing the narrow "
        "stairs.",
        "the old lighthouse stood at the edge of the cliff for more than a century every night its beam "
        "swept across the dark water warning sailors away from the rocks below when the keeper finally "
        "retired the town voted to keep the light burning and volunteers took turns climbing the narrow "
        "stairs",
    ),
)

# Figure 12: a voice agent's replies, streamed in word by word. Each first sentence has 15-20 words (the
# first-audio target's replies); one to four sentences each (the quality target's); plain words only, so
# that each is heard as written.
AGENT_REPLIES: tuple[str, ...] = (
    "I checked your account this morning and everything looks fine, so there is nothing you need to do "
    "right now.",
    "Your order left our warehouse yesterday afternoon and should reach your front door by the end of "
    "this week. I will send you a message as soon as the driver is on the way.",
    "The museum is open every day except Monday, and the best time to visit is early in the morning. "
    "Tickets are cheaper online. Remember to bring a jacket, because the galleries are kept quite cool.",
    "That sounds like a lovely plan for the weekend, and the weather should stay dry and warm until "
    "Sunday evening. You could take the coastal path in the morning. There is a small cafe at the end of "
    "it. Many people stop there for lunch before walking back.",
    "I am sorry to hear that the heating stopped working again, especially on such a cold and windy "
    "night. A technician can visit tomorrow between nine and noon.",
    "Of course, I can move your appointment to next Thursday afternoon if that works better for your "
    "schedule. Would you like me to confirm it now?",
    "The easiest way to reset the router is to hold the small button on the back for about ten "
    "seconds. The lights will blink and then turn green. After that, try to connect again.",
    "Thank you for waiting, I found three flights that leave tomorrow morning and arrive before lunch time.",
    "Your library books are due back on Friday, but you can renew them once more on the website. A "
    "reminder will reach you the day before.",
    "Great question, the recipe takes about two hours, most of which is waiting for the dough to rise. "
    "You can prepare the filling while it rests. Bake it until the top turns golden. Let "
    "it cool before you slice it.",
    "I understand that the delivery was late, so I have added a credit to your account for the trouble.",
    "The train to the city leaves from the second platform every twenty minutes during the day. The "
    "journey takes just under an hour. Buy your ticket before boarding to avoid a fine.",
)

# The quick run's conversations: three short sentences (a few seconds of audio each way).
AGENT_SHORT_REPLY = (
    "Your table is booked for seven tonight. We will hold it for a quarter of an hour. See you soon."
)

# The flush figure's phrase: said on a context that is already open (what an agent says while it works).
AGENT_PHRASE = "Sure, let me look that up for you."

# The barge-in's reply: long sentences, so that the user cuts in while one is still coming in.
AGENT_BARGE_IN = (
    "Let me walk you through the whole process step by step, so that nothing gets missed along the way. "
    "First you will open the settings page from the menu in the top corner of the screen, and then you "
    "will scroll all the way down past the privacy options until you find the section about connected "
    "devices and accounts. There you can remove the old phone from the list, and once it is gone you can "
    "add the new one by scanning the code that appears on the screen with its camera. If anything goes "
    "wrong at that point, simply close the page, wait a minute or two, and start again from the very "
    "beginning of these instructions."
)
