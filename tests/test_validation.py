"""Narrative overreach: the corpus numbers, tricky cases, retries and autocorrection."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ttrpg.defaults import VALIDATION_MAX_ATTEMPTS
from ttrpg.game.validation import (
    autocorrect,
    evaluate,
    find_overreach,
    strict_instructions,
)

DATA = Path(__file__).resolve().parent / "data"
CORPUS = DATA / "overreach_corpus.jsonl"
#: Labelled independently of the detector, and used to write its rules: the dev and (first) test parts
#: of tests/data/overreach/ (build_corpus.py); the test part's misses were studied once it had been scored.
DEVELOPMENT = (DATA / "overreach" / "dev.jsonl", DATA / "overreach" / "test.jsonl")
#: The held-out parts (tests/data/overreach/README.md says how each was made), in the order they were
#: made. The first was committed before the rules it scores were final; later rules were written from
#: the misses of one half of it, so it is no longer the honest measure.
FIRST_HELD_OUT = DATA / "overreach" / "fresh.jsonl"
#: The second held-out part; rules were then written from its misses, so it too is no longer the honest measure.
SECOND_HELD_OUT = DATA / "overreach" / "fresh2.jsonl"
#: The third held-out part; rules were then written from its misses.
THIRD_HELD_OUT = DATA / "overreach" / "fresh3.jsonl"
#: The fourth held-out part; rules were then written from its misses.
FOURTH_HELD_OUT = DATA / "overreach" / "fresh4.jsonl"
#: The held-out part: labelled by meaning by someone who never opened or ran the detector, and
#: committed before it was scored; nobody writing rules has read it.
HELD_OUT = DATA / "overreach" / "fresh5.jsonl"
#: Every held-out part in the order it was made, each checked against all that came before it.
AGREEMENT = DATA / "overreach" / "agreement"
HELD_OUT_PARTS = (FIRST_HELD_OUT, SECOND_HELD_OUT, THIRD_HELD_OUT, FOURTH_HELD_OUT, HELD_OUT)


def test_corpus_is_big_varied_and_balanced():
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    assert len(rows) >= 160
    assert len({r["text"] for r in rows}) == len(rows)
    positives = [r for r in rows if r["overreach"]]
    assert 0.4 <= len(positives) / len(rows) <= 0.6
    assert {r["kind"] for r in positives} == {"outcome", "other_reaction", "future"}
    assert all(r["kind"] is None for r in rows if not r["overreach"])


def test_precision_and_recall_on_corpus():
    result = evaluate(CORPUS)
    print(f"\noverreach corpus: precision={result['precision']:.3f} recall={result['recall']:.3f} "
          f"tp={result['tp']} fp={result['fp']} fn={result['fn']} tn={result['tn']}")
    for error in result["errors"]:
        print(f"  {error['error']}: {error['text']}")
    assert result["precision"] >= 0.95
    assert result["recall"] >= 0.95


def _report(name: str, result: dict) -> None:
    print(f"\noverreach {name}: precision={result['precision']:.3f} recall={result['recall']:.3f} "
          f"tp={result['tp']} fp={result['fp']} fn={result['fn']} tn={result['tn']}")
    for error in result["errors"]:
        print(f"  {error['error']}: {error['text']}")


@pytest.mark.parametrize("path", DEVELOPMENT, ids=lambda p: p.stem)
def test_precision_and_recall_on_the_development_parts_of_the_independent_corpus(path):
    result = evaluate(path)
    _report(f"{path.stem} part", result)
    assert result["tp"] + result["fn"] >= 150 and result["tn"] + result["fp"] >= 150
    assert result["precision"] >= 0.95
    assert result["recall"] >= 0.94


def test_precision_and_recall_on_the_held_out_part():
    """Scored as it is. The goal is 0.95 / 0.95; measured on 425 lines nobody tuned for: precision
    0.897, recall 0.787 (0.750 on stated outcomes, 0.892 on others' reactions, 8 of 16 certain
    futures); before the rules written from ``fresh4``'s misses, 0.897 / 0.782. Each round of rules
    written from one held-out part's misses moved the next unseen part little: ``fresh3`` 0.893 /
    0.791 -> 0.926 / 0.825, ``fresh4`` 0.910 / 0.763 -> 0.910 / 0.768, this part 0.897 / 0.782 ->
    0.897 / 0.787. This guards that level; its misses are printed (``pytest -s``). The goal is
    reached with a capable model as referee: ``tests/test_judge.py``."""
    result = evaluate(HELD_OUT)
    _report("held-out part", result)
    assert result["tp"] + result["fn"] >= 200 and result["tn"] + result["fp"] >= 200
    assert result["precision"] >= 0.89
    assert result["recall"] >= 0.78


def test_the_held_out_labels_are_what_careful_readers_agree_on():
    """The goal is reachable by reading, so the labels are not the limit: two more readers labelled
    every line of the held-out part blind (the texts alone, shuffled; the labelling convention and
    the development lines, never the labels, the detector or each other's file). Scored against
    the committed labels they reach 0.986 / 0.991 and 0.990 / 0.957 (Cohen's kappa 0.98 and 0.95);
    the committed labels against the majority of all three, 0.995 / 0.995. What the rules miss is
    reading for meaning: see :mod:`ttrpg.game.judge` for the model as referee."""
    committed = [json.loads(line) for line in HELD_OUT.read_text().splitlines()]
    for name in ("a", "b"):
        lines = (AGREEMENT / f"fresh5-reader-{name}.jsonl").read_text().splitlines()
        reader = {r["text"]: r["overreach"] for r in map(json.loads, lines)}
        assert sorted(reader) == sorted(r["text"] for r in committed)
        result = evaluate(committed, reader.__getitem__)  # the reader as a checker of the committed labels
        assert result["precision"] >= 0.95 and result["recall"] >= 0.95, (name, result["precision"], result["recall"])


#: The held-out parts after rules were written from their misses: (part, precision floor, recall floor).
#: fresh: 0.880 / 0.742 while held out; rules from the misses of the half whose text hashes even
#: (``sha1(text)[0] % 2 == 0``) took the other, unread half from 0.882 / 0.752 to 0.887 / 0.789; with
#: the later rounds the whole part scores 0.942 / 0.899.
#: fresh2: 0.886 / 0.745 while held out, 0.948 / 0.885 now.
#: fresh3: 0.926 / 0.825 while held out, 0.964 / 0.896 now.
#: fresh4: 0.910 / 0.763 while held out, 0.968 / 0.863 now.
READ_PARTS = [(FIRST_HELD_OUT, 0.93, 0.89), (SECOND_HELD_OUT, 0.94, 0.88), (THIRD_HELD_OUT, 0.95, 0.89),
              (FOURTH_HELD_OUT, 0.96, 0.86)]


@pytest.mark.parametrize("path,precision,recall", READ_PARTS, ids=lambda v: getattr(v, "stem", str(v)))
def test_precision_and_recall_on_the_held_out_parts_once_read(path, precision, recall):
    """Rules were written from these parts' misses once each had been scored: this guards them."""
    result = evaluate(path)
    _report(f"{path.stem} (read)", result)
    assert result["precision"] >= precision
    assert result["recall"] >= recall


def test_the_held_out_parts_are_well_formed_and_share_no_line_with_the_rest():
    """Their checker (fields, kinds, sources, notes, no line of any part made before): a held-out line
    copied from data the rules were written against would flatter the score."""
    spec = importlib.util.spec_from_file_location("check_held_out", DATA / "overreach" / "check_held_out.py")
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)
    assert [DATA / "overreach" / f"{name}.jsonl" for name in checker.HELD_OUT_ORDER] == list(HELD_OUT_PARTS)
    for path in HELD_OUT_PARTS:
        problems, counts = checker.check(path, checker.others_for(path.stem))
        assert problems == [], (path.name, problems[:5])
        assert sum(counts.values()) >= 400


def test_offsets_always_point_at_the_match():
    for path in (*DEVELOPMENT, *HELD_OUT_PARTS, CORPUS):
        for line in path.read_text().splitlines():
            text = json.loads(line)["text"]
            for v in find_overreach(text):
                assert text[v["start"]:v["end"]] == v["match"] and v["match"].strip()
                assert v["kind"] in ("outcome", "other_reaction", "future") and v["reason"]


def test_evaluate_takes_a_path(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": "I kill the guard.", "overreach": True, "kind": "outcome"}) + "\n"
                      + json.dumps({"text": "I try to kill the guard.", "overreach": False, "kind": None}) + "\n")
    assert evaluate(corpus) | {"errors": []} == {"precision": 1.0, "recall": 1.0, "tp": 1, "fp": 0, "fn": 0,
                                                 "tn": 1, "errors": []}


@pytest.mark.parametrize("text,kind", [
    ("I fire and the guard drops.", "outcome"),
    ("I successfully reroute power to the shields.", "outcome"),
    ("I try to hack the door, and it opens.", "outcome"),
    ("Zix shoots the pirate captain, who falls to the deck.", "outcome"),
    ("The captain nods and agrees.", "other_reaction"),
    ("The alien is terrified.", "other_reaction"),
    ("Everyone is impressed by my piloting.", "other_reaction"),
    ("The guard screams.", "other_reaction"),
    ("I fire at the reactor, which will surely destroy the station.", "future"),
    ("I punch it and then the ship escapes into hyperspace.", "future"),
    ("This will end the fight.", "future"),
])
def test_detects(text, kind):
    found = find_overreach(text)
    assert kind in {v["kind"] for v in found}, found
    for v in found:
        assert text[v["start"]:v["end"]] == v["match"]
        assert v["reason"]


@pytest.mark.parametrize("text", [
    "I try to hit the guard.",
    "I want to strike before he draws.",
    "Zix aims her blaster at the guard.",
    "I want to hack the door.",
    "I fire at the pirate, aiming to kill.",
    "I shove the crate off the ledge, hoping it falls on the sentry.",
    "I attempt to defeat the champion with a feint.",
    "I kick the support beam so it might fall across the corridor.",
    "If it works, we can slip out the back.",
    "Can I knock him out without killing him?",
    "\"This will end the fight,\" Zix mutters, priming the grenade.",
    "Kaya drops to one knee and fires at the pirates.",
    "I hit the thrusters and pull up hard.",
    "Zix nods and agrees to take point.",
    "I cover Kaya while she works on the lock.",
])
def test_allows_intent(text):
    assert find_overreach(text) == []


def test_violation_fields():
    [v] = find_overreach("I kill the guard.")
    assert v == {"kind": "outcome", "match": "kill", "start": 2, "end": 6, "reason": v["reason"]}


def test_strict_instructions_grow():
    texts = [strict_instructions(a) for a in range(1, VALIDATION_MAX_ATTEMPTS + 1)]
    assert VALIDATION_MAX_ATTEMPTS == 3 and texts[0] == ""
    assert 0 < len(texts[1]) < len(texts[2])
    with pytest.raises(ValueError):
        strict_instructions(0)


@pytest.mark.parametrize("text,expected", [
    ("I try to hack the door, and it opens.", "I try to hack the door."),
    ("I successfully reroute power to the shields.", "I reroute power to the shields."),
    ("Kaya manages to slip past the sentries unseen.", "Kaya tries to slip past the sentries."),
    ("Zix shoots the pirate captain, who falls to the deck.", "Zix shoots the pirate captain."),
    ("I fire at the reactor, which will surely destroy the station.", "I fire at the reactor."),
    ("I tell the captain my plan and she nods and agrees.", "I tell the captain my plan."),
    ("I aim at the drone. Direct hit!", "I aim at the drone."),
])
def test_autocorrect_clean(text, expected):
    corrected, needs_review = autocorrect(text, find_overreach(text))
    assert (corrected, needs_review) == (expected, False)
    assert find_overreach(corrected) == []


@pytest.mark.parametrize("text", ["I kill the guard with one shot.", "The guard screams.",
                                  "I bluff, and soon the guards are all asleep."])
def test_autocorrect_needs_review_when_nothing_sensible_is_left(text):
    corrected, needs_review = autocorrect(text, find_overreach(text))
    assert needs_review is True


def test_autocorrect_without_violations_is_identity():
    assert autocorrect("I try to hit the guard.", []) == ("I try to hit the guard.", False)


# --------------------------------------------------------------------------- structure
#
# Hand-written sentences (not taken from the corpora) for each structure the detector reads:
# the wording is deliberately different from the corpus so that the structure, not a phrase
# list, has to do the work.

STRUCTURE_DETECTS = [
    # a participle clause after the attempt states its result
    ("I punch him, knocking him out cold.", "outcome"),
    ("Vex sweeps the brute's legs, sending him crashing into the bar.", "outcome"),
    ("I overload the relay, shorting out every camera on the deck.", "outcome"),
    ("Mara fires a flare into the fuel drums, igniting the whole depot.", "outcome"),
    # a second coordinated verb presupposes the first one worked
    ("I hack the console and download the codes.", "outcome"),
    ("Tovin picks the lock and slips inside the vault.", "outcome"),
    ("I rummage through the desk and pull out the missing ledger.", "outcome"),
    # discovery and realization
    ("I search the room and discover the key.", "outcome"),
    ("Realizing the captain is a traitor, I draw my pistol.", "outcome"),
    ("I check the manifest and notice that two crates are missing.", "outcome"),
    ("Mara studies the map and figures out where the rebels are hiding.", "outcome"),
    ("Having already cracked the door code, Tovin walks right in.", "outcome"),
    # a perception that succeeds
    ("I spot the sniper on the ridge.", "outcome"),
    ("I hear the guards talking about the shipment.", "outcome"),
    ("I catch sight of the fugitive slipping into the crowd.", "outcome"),
    # just in time
    ("I dive through the hatch just before it seals.", "outcome"),
    ("Mara rolls under the door seconds before it slams shut.", "outcome"),
    ("Tovin jumps clear just as the bridge collapses.", "outcome"),
    # passive results
    ("The guard is knocked out.", "outcome"),
    ("The turret is destroyed by my second shot.", "outcome"),
    ("The sentries are taken down one by one.", "outcome"),
    ("The door gets blown off its hinges.", "outcome"),
    # certainty markers
    ("I successfully disable the alarm.", "outcome"),
    ("Kell manages to wrench the hatch open.", "outcome"),
    ("I patch the reactor leak with ease.", "outcome"),
    ("I sneak into the vault unnoticed.", "outcome"),
    # resultatives and causatives
    ("I kick the door open.", "outcome"),
    ("I talk the guard into letting us pass.", "outcome"),
    ("I haggle the trader down to forty credits.", "outcome"),
    ("I get the engine running again.", "outcome"),
    # someone or something else acts: coordinated, relative, appositive, absolute clauses
    ("I wave the credits and the clerk lets us through.", "other_reaction"),
    ("I bribe the guard, who pockets the money and unlocks the cell.", "other_reaction"),
    ("The smuggler, clearly nervous, hands over the crate.", "other_reaction"),
    ("The dockmaster looks terrified.", "other_reaction"),
    ("The guards ran away when they saw us.", "other_reaction"),
    ("The warden's aide: \"You may pass.\"", "other_reaction"),
    ("I pull the lever, the gate rising with a screech.", "outcome"),
    ("I throw the grenade and the barricade collapses.", "outcome"),
    ("My shot tears through the fuel line.", "outcome"),
    # the future
    ("I plant the beacon; the fleet will find us within the hour.", "future"),
    ("I rig the charges, and then the whole mine caves in.", "future"),
    ("My virus will shut down their defenses.", "future"),
    ("I jam the comms, and soon their patrols are lost.", "future"),
]

STRUCTURE_ALLOWS = [
    # hedges: intent verbs and their infinitives, hope, purpose, condition, modals
    "I try to punch him hard enough to knock him out.",
    "I swing at his jaw, hoping to knock him out cold.",
    "I start hacking the console, trying to get the codes.",
    "I slam the override in an attempt to seal the breach.",
    "I leave the door ajar in the hope that the cat wanders out.",
    "I set the timer so the charges blow after we leave.",
    "I tap the crystal to see whether it reacts to sound.",
    "If the door is locked, I'll try the vent instead.",
    "I dive for the hatch before it can seal.",
    "Tovin tries to disable the alarm, then open the vault.",
    # searching and perceiving without finding
    "I search the room for the key.",
    "I scan the ridge for snipers.",
    "I listen at the door for voices.",
    # questions and dialogue
    "Could you cover me while I cross?",
    "Is the guard still conscious?",
    "\"You're finished, pirate!\" I shout as I charge.",
    "\"The door is open,\" Mara says, pointing ahead.",
    "Dr. Osei: I will do what I can for the wounded.",
    "I tell the inspector we are hauling medical supplies.",
    "I ask the smuggler where he got the cargo.",
    "K-7 asks the foreman to shut the mine down until the supports are repaired.",
    # background clauses and the situation as given
    "While the pirates argue, I sneak toward the armory.",
    "I duck as the turret swings toward me.",
    "I check on the miners who were trapped in the tunnel.",
    "The door is sealed, so I look for another way in.",
    "My blaster is charged and ready.",
    # the character's own body, gear and pronouns
    "Kell kills the engine and coasts into the hangar.",
    "I pull out my blaster and take aim.",
    "Nyx draws her knife, and she circles around behind the sentry.",
    "\"On three,\" K-7 announces. \"One. Two.\" It braces against the door.",
    "Zix banks the ship around the asteroid, keeping it between us and the frigate, and readies the cannons.",
]


# --------------------------------------------------------------------------- generalization
#
# Written for the principles added after the held-out misses, in wording found in no corpus
# file: each structure is shown with its overreaching and its clean counterpart.

GENERALIZED_DETECTS = [
    # a participle of result after the attempt, with a change-of-state verb or a "leave" + state
    ("Kira slashes the power cable, plunging the whole deck into darkness.", "outcome"),
    ("I inject the sedative, calming the thrashing patient.", "outcome"),
    ("I stitch the wound shut, stopping the bleeding.", "outcome"),
    ("I silence the alarm, buying us time.", "outcome"),
    ("Ada hotwires the speeder and roars off, leaving the enforcers choking on her exhaust.", "outcome"),
    ("I gun the throttle and leave the patrol boats far behind.", "outcome"),
    # a trailing "as" clause where someone reacts or something changes
    ("\"Easy now,\" I murmur as the beast lowers its head.", "other_reaction"),
    ("I wave the credit chit as the bouncer steps aside.", "outcome"),
    ("Pell sings the old lullaby as the creature curls up and falls asleep.", "other_reaction"),
    # "until" + what the action brings about; "before <someone> can" react
    ("I tweak the frequency until the static clears.", "outcome"),
    ("I drop from the rafters behind the warden before anyone can shout a warning.", "outcome"),
    # success adjuncts: a time skip, "un-" + noticing, "without" + a side effect
    ("I crawl through the duct and come out behind the guards a minute later.", "outcome"),
    ("Two hours later we are docking at Tessaly Station.", "outcome"),
    ("I sneak past the checkpoint unchallenged.", "outcome"),
    ("We stroll through customs without a single question.", "outcome"),
    ("Zara picks the guard's pocket without him feeling a thing.", "outcome"),
    # arrival, completion and resultatives with any verb
    ("Rook leaps across the chasm and lands on the far ledge.", "outcome"),
    ("I steer the pod through the debris and touch down on the moon's surface.", "outcome"),
    ("We break through the blockade and jump to hyperspace.", "outcome"),
    ("I put out the fire in the galley.", "outcome"),
    ("I haul the hatch open.", "outcome"),
    ("I sweet-talk the dock officer into waiving our fees.", "outcome"),
    ("I fire a burst into the fuel tank, turning the landing craft into a fireball.", "outcome"),
    # ellipsis confirming a claim; certainty about others; a watched event; a relative "that"
    ("\"You'll tell me everything,\" I say, and he does.", "outcome"),
    ("I rig the door, knowing the pirates will walk right into it.", "future"),
    ("I bow and watch the elder slowly nod.", "other_reaction"),
    ("Nia throws a flare that ignites the fuel drums.", "outcome"),
    # an unseen verb of another subject is still a verb
    ("\"Out of my way!\" Rex bellows, and the crowd parts before him.", "other_reaction"),
    ("The guards never even glance our way.", "other_reaction"),
    # added from the first half of the first held-out part: noun phrases with an -ing modifier or a
    # "to" phrase, a time adjunct before a mid-sentence subject, a coordinated result on the
    # character's own object, a fact found under an intent, a statement after a semicolon
    ("I yank the cable, and the old cargo loader topples over.", "outcome"),
    ("I knock twice and the hatch to the engine room slides aside.", "outcome"),
    ("I slide the forged pass across the desk, and after a long silence the clerk stamps it.", "other_reaction"),
    ("I patch the leaking coolant line, and the coolant line is repaired.", "outcome"),
    ("I try to decode the transmission and learn the convoy leaves at dawn.", "outcome"),
    ("I try to hack the turret; five minutes later I am walking past it.", "outcome"),
    ("After two hours of haggling, Brin buys the freighter for half price.", "outcome"),
    ("I keep low, snapping pictures before the sentries turn around.", "outcome"),
    ("I radio the outpost and get a reply from the quartermaster.", "other_reaction"),
    ("I drag the crate all the way to the airlock.", "outcome"),
    ("I vanish into the market crowd within seconds.", "outcome"),
    ("I run for the shuttle while the turret's bolts miss me.", "outcome"),
    ("I've finally gotten past the checkpoint.", "outcome"),
    ("I grin as the refinery goes up in flames.", "outcome"),
    ("I get past this guard quietly.", "outcome"),
    ("I got to the roof within seconds.", "outcome"),
    # added from the misses of the second held-out part (fresh2.jsonl), once it had been scored: how an
    # attempt ended after "but", verbs whose present tense is the success, a task done before the
    # scene moves on, finds stated as movements, what happens to the character, the character got
    # there or away with it, a locative inversion, a reading after a colon, a deal made
    ("I try to start the generator, but it only coughs.", "outcome"),
    ("Ilsa tries to pick the lock, but she can't.", "outcome"),
    ("I try the side door, but no luck.", "outcome"),
    ("I soothe the frightened horse with a low hum.", "outcome"),
    ("I have already swapped the vials by the time the guards return.", "outcome"),
    ("Having bandaged the wound, I turn to the next patient.", "outcome"),
    ("I stumble upon a hidden cellar.", "outcome"),
    ("I follow the footprints to a collapsed mine shaft.", "outcome"),
    ("I rummage through the lockers until I find a keycard.", "outcome"),
    ("I am shot in the arm as I run.", "outcome"),
    ("My bluff is swallowed whole by the customs officer.", "outcome"),
    ("I pull the pilot clear of the burning wreck.", "outcome"),
    ("Tam's stern speech scares the mob into silence.", "outcome"),
    ("Jax slides under the laser grid without setting it off.", "outcome"),
    ("I make it across the rope bridge.", "outcome"),
    ("I'm through the gate before it closes.", "outcome"),
    ("I stroll away with the duke's signet ring.", "outcome"),
    ("I kick the crate and out tumbles a rusty pistol.", "outcome"),
    ("The crystal is already humming in Vex's hands.", "outcome"),
    ("I count the crates: fourteen, one of them open.", "outcome"),
    ("The navigator sells the stolen charts for a fortune.", "outcome"),
    ("We will escape this moon; no doubt about it.", "future"),
    # and from the first held-out part's misses, read in full once fresh3.jsonl was committed
    ("I slash the tether, cutting us loose.", "outcome"),
    ("I reboot the cooling system, bringing the core back to normal.", "outcome"),
    ("I toss a flashbang into the room, stunning every guard inside.", "outcome"),
    ("I wire the explosives; in ten minutes the bridge will be gone.", "future"),
    ("I tear down the banner to reveal the hidden mural.", "outcome"),
    ("I snatch the arrow out of the air.", "outcome"),
    ("I wrench myself free of the wreck.", "outcome"),
    # from the misses of the third held-out part (fresh3.jsonl), read once it had been scored and
    # fresh4.jsonl committed: a perfect find, the distance of an escape, a made-certain future, a
    # trail to a find, "there it is", "no luck", "end up with", "turns out", a trail shaken off,
    # a second verb of being away, a pickpocket's theft, an arrival in a participle, nobody reacting,
    # the thing in the character's pocket by the time the scene moves on
    ("I've located the fault, a cracked seal behind the pump.", "outcome"),
    ("By the time the sirens start, I'm two streets away.", "outcome"),
    ("The vote goes our way tomorrow; I've made sure of it.", "future"),
    ("I trail the drag marks to a cellar door.", "outcome"),
    ("I taste the stew and there it is, the tang of nightshade.", "outcome"),
    ("I search the drawer: no luck, only receipts.", "outcome"),
    ("I charm the clerk and we end up with two free tickets.", "outcome"),
    ("Turns out the vault has a second door.", "outcome"),
    ("Mira throws the dogs off her trail in the creek.", "outcome"),
    ("Tib grabs the idol and is out of the temple before the doors seal.", "outcome"),
    ("I lift the brass key from the jailer's belt.", "outcome"),
    ("I swim the channel, reaching the far bank at dawn.", "outcome"),
    ("I walk through the hall and nobody so much as blinks.", "other_reaction"),
    ("By the time the music stops, the necklace is in my pocket.", "outcome"),
    # from the misses of the fourth held-out part (fresh4.jsonl), read once it had been scored and
    # fresh5.jsonl was being written by someone who never saw the detector
    ("I palm the chip while the croupier looks away and no one is the wiser.", "outcome"),
    ("With the sentry out cold, I wave the team through.", "outcome"),
    ("Bram lifts the thug and hurls him clean out of the tavern.", "outcome"),
    ("I keep the clerk chatting long enough for Nix to slip into the archive.", "outcome"),
    ("Pell's joke has the whole crew in stitches.", "other_reaction"),
    ("I draw the splinter out cleanly.", "outcome"),
    ("The guard ends up waving us through.", "outcome"),
    ("I open the crate, and there he is: the missing cabin boy.", "outcome"),
    ("I remind the drone of its orders, and it meekly hands over the keys.", "outcome"),
    ("I jimmy the back door and slip inside.", "outcome"),
    ("After the warden agrees to the deal, Sela signs the papers.", "other_reaction"),
    ("I work the tumblers for a long minute before the lock clicks open.", "outcome"),
    ("I lean on the crowbar and feel the lid finally give.", "outcome"),
    ("I argue our case and win us another day.", "outcome"),
    ("Nim gives the patrol the slip in the fish market.", "outcome"),
    ("Dax shrugs off the guard's punch.", "outcome"),
    ("Vee is halfway across the roof before the alarm sounds.", "outcome"),
    ("I brush past the banker, lifting his keycard as I go.", "outcome"),
    ("\"She'll talk by dawn,\" Rook says, and she will.", "future"),
    ("I bandage the wound, and within an hour she is walking again.", "outcome"),
]

GENERALIZED_ALLOWS = [
    "Kira tries to slash the power cable before the guards notice.",
    "I keep talking, trying to get the hostage-taker to lower his gun.",
    "I tweak the frequency, looking for a clean signal.",
    "I reach for the wounded pilot's harness buckle.",
    "I try to land the shuttle on the tilted platform.",
    "I want to reach the control room before the doors lock.",
    "I'll circle back later and check the engine room.",
    "I move without hesitation toward the airlock.",
    "I approach unarmed, palms open.",
    "I keep my hands where the guard can see them as he approaches.",
    "I grin at Rex as the engines warm up.",
    "I brace myself against the bulkhead as the ship lurches.",
    "Kellan sprints across the bridge as it sways under his weight.",
    "I whisper a prayer as the shuttle shudders through reentry.",
    "I scan the crowd for anyone who looks out of place.",
    "I search for a crate that matches the manifest.",
    "I tell Rex the plan: he distracts the guards while I slip in.",
    "I push the throttle forward as far as it goes.",
    "I hold the door open for the others.",
    "\"Stand down,\" Okoye orders the mercenaries, her rifle raised.",
    "I catch the bartender's eye and nod toward the back room.",
    "The shuttle is about to lift off, so I strap in.",
    "You say: \"The guard looks bored and keeps checking the clock.\"",
    "Rex checks his rifle, mutters that the odds are terrible, and moves to the door.",
    # their clean counterparts
    "I try to decode the transmission and learn when the convoy leaves.",
    "I try to hack the turret a moment before the patrol rounds the corner.",
    "I grab for the switch that opens the bay doors.",
    "I kneel by the tracks, figuring out which way the cart went.",
    "I scan the manifest, memorizing the crate numbers.",
    "The navigator is hunched over the star charts, so I take the helm myself.",
    "I patch the leaking coolant line, and the coolant line is still sealed.",
    "I've got through worse than this.",
    # found by review: requests, needs and promises, nouns that contain a response word, abstract
    # finds, and scene events after "while"
    "I order the crew to seal the doors within minutes.",
    "We need to be gone within seconds.",
    "I tell them to run all the way to the gate.",
    "I promise to return after three nights.",
    "I get the answer key from the teacher's desk.",
    "I get my reply ready.",
    "I couldn't find a better plan, so here goes.",
    "I run while the building collapses.",
    # the clean counterparts of the rules added from fresh2.jsonl's misses
    "I'd like to help, but I can't.",
    "I calm down and check my gear.",
    "I patch into the station's comms.",
    "I've already tried the front door.",
    "I've picked tougher locks than this before.",
    "I was wounded once, years ago.",
    "I try to stay low so that I am not spotted.",
    "I flick the lighter open and shut.",
    "I try to calm the beast until it settles, humming softly.",
    "I fire until my rifle runs dry.",
    "I was told that the bridge floods at night.",
    "I ask the smuggler who sold him the map.",
    "I plot a course that skirts the asteroid field.",
    "My character will keep watch.",
    "I pull off my gloves and get to work.",
    "I follow him to a booth at the back.",
    "I turn up the collar of my coat.",
    "I lift the tarp, hoping to reveal a mural.",
    "I scan the hall, checking every few seconds for movement.",
    "I try to wrench myself free.",
    "Let's see how it turns out.",
    "It turns out I'm more tired than I thought.",
    "I lift the crate onto the cart.",
    "I keep climbing, reaching for the next hold.",
    "When the bell rings and the crowd surges forward, I slip toward the stage.",
    "I pin the smuggler against the crates and ask who paid him.",
    "I have seen worse storms than this.",
    "The pistol is in my hand.",
    "*Vel-7 its antennae twitch when it thinks* Processing. Vel-7 tries to open the hatch.",
    "I have to fix it before the patrol comes back.",
    "I cross the beam with barely a metre of rope to spare.",
    "I edge the skiff toward the dock, easing it past the buoys.",
    "I trace the cable back toward the junction box.",
    "Tova runs for the gate as fast as her legs allow.",
    "I kneel by the altar, my eyes fixed on the relic.",
    "I taste the dish, determined not to flinch.",
    "*Brakk the Silent taps his tusks twice* I try to haggle.",
    "I don't want to end up in a cell.",
    # found by review: "across", "on" and "onto" are movements unless what follows is new
    "I run across the bridge.",
    "I come across the room to the bar.",
    "I stumble on the stairs.",
]


@pytest.mark.parametrize("text,kind", STRUCTURE_DETECTS + GENERALIZED_DETECTS)
def test_detects_by_structure(text, kind):
    found = find_overreach(text)
    assert kind in {v["kind"] for v in found}, found


@pytest.mark.parametrize("text", STRUCTURE_ALLOWS + GENERALIZED_ALLOWS)
def test_allows_by_structure(text):
    assert find_overreach(text) == []
