"""English word lists for the synthetic sentence grammar (`w2v2cli.synth.sentences`), about 2,400 words.

Each list is ordered roughly from common to rare; the grammar draws from it with Zipf-like weights, so a
corpus has frequent and rare words as real text does. Words are lower case, letters only.
"""

from __future__ import annotations

#: people and animals (sentence subjects)
NOUNS = """
man woman child boy girl dog cat bird horse friend mother father brother sister teacher doctor farmer
king queen student driver baker sailor soldier painter captain neighbour stranger hunter miller merchant
traveller uncle aunt cousin nephew niece grandmother grandfather baby family lady gentleman prince princess
nurse pilot writer poet singer dancer player coach judge lawyer priest monk nun clerk guard officer
policeman fireman fisherman gardener shepherd carpenter blacksmith tailor butcher cook waiter waitress
servant maid porter postman messenger banker trader shopkeeper seller buyer customer guest host visitor
pupil scholar professor scientist engineer builder mason plumber miner sailor pirate knight duke duchess
earl lord emperor empress chief leader general colonel sergeant major admiral mayor governor minister
president senator reporter editor actor actress artist musician drummer piper fiddler juggler clown
magician wizard witch giant dwarf fairy ghost hero villain thief robber beggar prisoner hermit pilgrim
monarch jester herald squire page widow orphan twin bride groom husband wife son daughter grandson
granddaughter parent child infant toddler youth elder neighbour companion partner rival enemy ally
puppy kitten pony donkey mule goat sheep lamb cow calf bull ox pig piglet rabbit hare mouse rat squirrel
fox wolf bear deer stag elk moose lion tiger leopard panther cheetah jaguar elephant camel giraffe zebra
monkey ape gorilla chimpanzee kangaroo koala badger otter beaver hedgehog mole weasel ferret raccoon
skunk bat owl eagle hawk falcon crow raven sparrow robin swallow pigeon dove duck goose swan hen rooster
chicken turkey parrot peacock penguin seagull heron stork crane frog toad snake lizard turtle tortoise
crocodile dolphin whale seal walrus shark salmon trout goldfish spider beetle butterfly moth bee wasp
ant fly mosquito worm snail lobster crab oyster octopus squirrel hamster canary
"""

#: objects and places (objects of verbs)
THINGS = """
box letter key lamp basket coat book ship wagon bottle hat chair table rope map candle clock window door
garden river bridge road village castle field forest apple bread stone flower cup house car boat train
bicycle ball bag bell bench bed blanket boot bowl bucket button cake card carpet chain cheese coin
cushion desk dish drum egg envelope fence flag fork glass glove gate guitar hammer helmet horn jacket jar
jug kettle kite knife ladder lantern leaf lock mirror nail needle net newspaper notebook orange pan paper
parcel pen pencil piano picture pillow pipe plate pocket pot purse radio ring rug sack saddle scarf
scissors shell shield shirt shoe shovel sign skirt sock spoon stick stool string suitcase sword tent
ticket tie towel toy tray trumpet tub umbrella vase violin wallet watch wheel whistle wire wreath
banana pear plum peach cherry grape lemon melon potato carrot onion cabbage turnip pumpkin tomato bean
pea nut cookie biscuit pie tart sandwich sausage ham bacon steak soup stew salad butter honey jam sugar
salt pepper flour rice corn wheat oat barley milk tea coffee juice wine beer water
cottage cabin hut barn stable shed tower church chapel temple palace mansion hall library museum
school college hospital prison factory mill mine shop store market bakery inn tavern hotel station
harbour port dock pier lighthouse tunnel canal well fountain pond lake stream waterfall valley hill
mountain cliff cave island beach shore desert meadow orchard vineyard farm pasture swamp marsh jungle
wood grove park square street lane alley path track trail highway avenue corner wall roof chimney
attic cellar kitchen parlour bedroom bathroom staircase balcony porch yard courtyard cathedral abbey
fortress citadel bastion dungeon tomb monument statue pillar arch dome gallery theatre circus arena
stadium airport garage warehouse workshop studio office bank court embassy camp village city town
capital province county kingdom empire country nation border coast horizon
anchor anvil apron arrow axe badge banner barrel basin beacon bead belt blade bonnet bouquet bracelet
brick broom brush buckle cabinet cage calendar camera canoe canvas cap cart carriage casket chalk
chest cloak cloth collar comb compass crate crown crystal curtain dagger diamond diary doll drawer
emerald engine fan feather fiddle flask flute gem globe goblet hammock handkerchief harp hatchet
hook hose jewel kayak lace ladle lid locket loom mask mat medal mitten mug necklace oar ornament
paddle pail paintbrush pan parasol pearl pebble pendant pin pitcher plank plough pouch quill quilt
raft rake razor ribbon rifle robe rocket rod ruby ruler sail sandal saucer scale scroll seed sheet
shawl shelf sickle slipper sled spade spear spindle sponge spool stamp stove sundial swing
tablecloth tapestry teapot telescope thimble thread throne tile tin tool torch trophy trunk tulip
valve veil wand wardrobe washtub weapon whip wig windmill yacht yarn zipper
album atlas bandage battery blanket blueprint bolt bookcase bottle brochure calculator candlestick
cardboard cartridge catalogue certificate chandelier chessboard clipboard cupboard dictionary
doorknob doormat dumbbell easel eraser fireplace flashlight footstool frame funnel gadget
gramophone hairbrush handbag headband jigsaw keyboard lampshade lawnmower magnet mailbox
manuscript mattress microphone microscope motorcycle napkin nutcracker padlock pamphlet passport
photograph pinwheel plaque postcard poster puzzle recipe sandbag saucepan scooter
screwdriver seashell skateboard snowball spectacles stapler stethoscope stopwatch suitcase
sunflower surfboard tambourine teacup teaspoon thermometer toothbrush tractor treasure tricycle
trolley typewriter vacuum wheelbarrow whisk wristwatch xylophone
acorn aerial almond alphabet anchor apricot armchair artichoke asparagus avocado bagel
balloon bamboo bandanna banjo barometer basketball bathtub beehive beetroot bellows binoculars blender
blossom bobbin bonfire bookmark boomerang bottlecap bracelet breadbox briefcase broccoli bubble buggy
bungalow cactus cake camel candlestick cannon caravan cauliflower celery cello chariot checkbook
chestnut chopsticks cinnamon clarinet coconut cobweb cocoa conch cornflake cracker crayon croissant
cucumber cupcake daisy dandelion dartboard doughnut dragonfly dumpling eggplant elbow fig firework
fishbowl footstep fossil garlic gingerbread goblet gooseberry grapefruit haystack hazelnut hedge
horseshoe iceberg igloo inkwell jellybean kaleidoscope kennel ketchup kiwi lemonade lettuce lollipop
macaroni mandolin mango marble marmalade meatball mushroom mustard nectarine noodle nutmeg oatmeal
olive omelette pancake papaya parsley parsnip pastry peanut pepperoni pickle pineapple pistachio
pizza popcorn pretzel prune pudding raisin raspberry rhubarb saxophone scone snowflake spaghetti
spinach strawberry tangerine toffee trombone tuba vanilla walnut watermelon wishbone
"""

#: adjectives
ADJECTIVES = """
old young small large little big tall short long quiet happy tired brave clever kind angry busy gentle
proud strange heavy light dark bright cold warm hot cool empty full broken green red yellow golden wooden
narrow wide new good bad great poor rich strong weak fast slow soft hard loud sweet sour bitter fresh
clean dirty dry wet deep shallow high low round square flat thick thin sharp smooth rough heavy
beautiful pretty ugly handsome lovely plain fancy simple fine grand humble noble wild tame calm
busy lazy eager careful careless honest polite rude shy bold fierce friendly lonely curious famous
secret hidden ancient modern silent noisy sleepy hungry thirsty lucky unlucky clumsy graceful
cheerful gloomy merry sad glad sorry worried nervous jolly silly wise foolish patient stubborn
faithful loyal generous greedy selfish humble jealous grateful anxious peaceful restless
blue white black brown grey pink purple orange silver crimson scarlet violet
pale rosy dusty muddy sandy rocky stony icy frozen snowy rainy windy foggy cloudy sunny stormy
shiny dull gleaming glowing sparkling twinkling faded painted carved polished rusty
tiny huge enormous giant miniature vast endless
early late sudden gradual rare common usual odd special ordinary precious valuable cheap costly
delicate fragile sturdy solid hollow
crooked straight curved twisted tangled knotted
leather woollen silken cotton linen velvet iron copper bronze brass steel glass paper stone marble
crystal clay
fragrant smelly tasty delicious spicy salty juicy ripe rotten stale crisp crunchy creamy
bumpy slippery sticky fluffy fuzzy hairy feathery scaly spotted striped
distant nearby northern southern eastern western foreign local royal rural urban coastal
magic mysterious enchanted haunted cursed sacred holy humble
grumpy sulky timid cranky feeble frail mighty powerful gigantic
ragged tattered shabby elegant splendid magnificent glorious marvellous wonderful terrible
horrible awful dreadful pleasant charming delightful adorable
cosy snug spacious crowded empty vacant lively busy sleepy
clever cunning sly crafty witty brilliant skilful talented
dizzy drowsy weary sleepy hungry starving
emerald amber ivory ebony golden silvery
able absent active actual afraid alert alive amazing ashamed asleep awake aware awkward
bare basic bitter blank blind bony bossy brief broad bulky careful casual cautious central certain
chilly civil clear clever close cloudless complete correct cozy crazy cruel cultured curly cute daring
dear decent dense determined different difficult dim direct dreamy dusky easy empty entire equal exact
excited expensive extra faint fair false familiar fat fearful fearless firm fit flexible fond formal
free frosty frank frightened funny furious fussy gentle gifted giddy gleeful gorgeous grateful grim
guilty handy harsh healthy helpful helpless hopeful hopeless huge icy idle ill important innocent
jealous juicy keen kindly large lean level lively loose lost lucky mad mean mild minor misty moist
nasty neat needy nice nimble normal numb obvious odd oily open orderly oval perfect plump polite
portly prickly private proper public pure quaint quick rapid ready real regular remote rigid ripe
risky rosy rotten rusty safe salty scruffy serious severe shaggy silky skinny sleek slender slim
sloppy sly smart snappy sober solemn sore spare spiky splendid spotless square stark steady steep
sticky stiff stout strict sturdy sudden super swift tender tense thankful tidy tight total tough
tricky true typical unusual upset useful useless usual vague vain vivid wary wealthy weird whole
wicked wiry wobbly woolly worthy yearly young youthful zealous
"""

#: transitive verbs, past tense
TVERBS = """
carried found bought opened closed painted watched followed noticed lifted dropped mended sold cleaned
pushed pulled dragged hid brought kept wanted needed remembered saw took gave made held left met loved
liked hated called helped visited asked answered chased caught threw kicked hit touched grabbed
wrapped packed unpacked filled emptied washed dried polished fixed built broke burned buried
cooked baked boiled fried ate drank tasted smelled heard counted measured weighed borrowed lent
stole returned delivered sent received wrote read signed copied drew sketched carved sewed knitted
wove tied untied locked unlocked loaded unloaded moved turned twisted bent folded unfolded rolled
shook stirred poured spilled dropped collected gathered picked planted watered cut chopped sliced
peeled squeezed crushed sharpened tightened loosened fastened attached removed replaced repaired
examined inspected studied tested tried used wore admired praised thanked greeted welcomed warned
blamed scolded teased tickled hugged kissed fed petted trained taught guided led carried rescued
saved protected guarded defended attacked fought beat defeated chased hunted trapped freed released
searched explored discovered invented designed planned prepared arranged ordered offered showed
described explained mentioned recognised recalled forgot ignored missed passed reached crossed
climbed entered decorated covered uncovered hung raised lowered stacked piled sorted spread
shared divided traded exchanged paid earned won lost owned rented hired fired paid
pictured imagined expected promised refused accepted rejected chose selected preferred needed
buried dug swept scrubbed wiped dusted ironed hammered nailed glued painted tidied
ignored followed joined visited invited entertained amused surprised startled frightened scared
comforted calmed cheered encouraged bothered annoyed disturbed interrupted
noticed spotted glimpsed observed watched viewed
bumped tapped knocked rattled banged squeezed stroked patted rubbed scratched
blew sniffed licked chewed swallowed nibbled gobbled
carted towed hauled shoved lugged hoisted
photographed recorded filmed printed published announced
mailed posted shipped wrapped
abandoned accompanied adopted adored alarmed approached assembled attracted avoided
balanced banished baptised beckoned befriended bribed brushed calculated captured carved celebrated
challenged charmed cherished circled clutched combed commanded comforted concealed conquered
consulted crafted crowned cuddled dampened dazzled decorated delayed demolished deserted devoured
dismissed displayed dissolved distracted doubted drained dressed embraced emptied enlarged escorted
fetched flattered flung fooled framed gripped grilled guarded handled harvested healed heated
hugged hurled illuminated injured irritated juggled kidnapped lassoed launched lured managed
memorised misplaced nursed obeyed occupied operated painted pardoned patrolled persuaded pinched
plucked pocketed poisoned pondered prodded punished puzzled quenched questioned rattled rebuilt
recited rewarded rinsed roasted robbed sampled scattered scolded sealed seized shaved sheltered
shielded signalled smashed smuggled snatched soaked steered stitched stocked strangled summoned
supported surrounded swapped tamed tended thrilled tossed toasted transported trimmed tugged
unbuttoned unwrapped valued vaccinated wakened wasted whipped whittled yanked zipped
"""

#: intransitive verbs, past tense
IVERBS = """
slept laughed waited smiled rested listened wandered hurried whispered shouted sang worked danced vanished
returned stopped walked ran jumped swam flew fell sat stood cried wept sighed yawned coughed sneezed
shivered trembled nodded waved bowed knelt prayed played studied travelled arrived departed escaped
hid hesitated paused stumbled tripped slipped crawled climbed rolled marched strolled wandered roamed
drifted floated sank rose grew shrank glowed shone sparkled faded melted froze burned boiled
complained argued agreed disagreed apologised explained spoke talked chatted gossiped giggled
chuckled grinned frowned scowled blushed fainted recovered woke dreamed snored dozed relaxed
shopped cooked cleaned painted practised rehearsed performed competed won lost cheered clapped
hummed whistled shrieked screamed howled barked growled purred hissed chirped squeaked roared
galloped trotted hopped skipped leaped bounced wobbled waddled tiptoed limped
paddled rowed sailed drove rode cycled skated skied surfed dived
knocked rang buzzed rattled creaked clattered
smiled wondered worried thought listened
lingered loitered idled dawdled
disappeared reappeared appeared emerged
"""

ADVERBS = """
slowly quickly quietly carefully suddenly gladly softly silently loudly gently happily sadly angrily
calmly patiently proudly bravely eagerly nervously sleepily lazily busily briskly boldly shyly
politely rudely kindly warmly coldly firmly loosely neatly clumsily gracefully cheerfully gloomily
merrily wisely foolishly honestly secretly openly quietly swiftly steadily rapidly smoothly roughly
sharply brightly dimly deeply lightly heavily barely nearly hardly certainly surely
"""

NAMES = """
john mary thomas alice peter anna george helen william clara robert emma henry lucy edward martha arthur
grace james sarah charles elizabeth richard margaret joseph susan daniel laura michael rachel david
emily paul jane mark julia andrew rose simon ruth stephen alan kate brian linda kevin amy frank nancy
samuel hannah oliver olivia harry sophie jack chloe oscar lily charlie ella leo mia max isla noah zoe
jacob ava ethan ruby lucas evie adam freya luke holly ben megan tom beth sam ivy joe amber dan jenny
albert agnes walter edith harold dorothy ernest florence alfred mabel herbert ethel victor irene
hugo nora felix iris jasper maud rupert violet ralph hazel percy pearl cecil sylvia bernard maisie
frederick beatrice leonard eleanor gilbert harriet reginald josephine norman matilda roland winifred
abigail adrian agatha alexander alfie alison amelia angela anthony archie audrey barbara benedict
bertha bethany bonnie cameron caroline catherine cecilia christopher claudia colin connor cynthia
deborah denise derek diana dominic douglas eliza elliot esther eugene evelyn fiona florian gabriel
gemma geoffrey gerald gertrude gloria gordon gregory gwendolyn heather hector imogen isaac isabel
jeremy jessica jonathan judith justin katherine kenneth lawrence leonora lionel lorna malcolm marcus
marian martin maxwell melissa miranda monica nathan neville nicholas nigel octavia patrick penelope
philip phoebe priscilla quentin rebecca roger rosalind russell sebastian sheila sidney stanley
theodore timothy tobias ursula vanessa vincent wilfred yvonne
"""

#: nouns for place phrases ("near the old mill"); PREPOSITIONS precede them
PLACE_NOUNS = """
bridge river garden mill table road forest castle hill window village path field kitchen station
market church harbour lake pond well fountain gate wall tower barn stable cottage farm orchard meadow
valley mountain cave shore beach island square street corner library school shop inn hall palace
chapel cellar attic staircase porch yard fence hedge tree oak willow cliff stream waterfall desert
swamp woods park bench dock pier lighthouse tunnel canal cathedral museum theatre circus camp
"""

PREPOSITIONS = """across | near | in | behind | under | beside | at | inside | on | by | through | along | over |
    past | around | outside | beyond | towards | below | above | opposite"""

TIMES = """yesterday | this morning | in the evening | after dinner | before sunrise | last winter | every day |
    at noon | late at night | on sunday | during the storm | a long time ago | last week | next spring |
    on monday | on tuesday | on wednesday | on thursday | on friday | on saturday | at midnight |
    at dawn | at dusk | after lunch | before breakfast | in the afternoon | last summer | in the autumn |
    that night | the next day | a moment later | soon afterwards | once again | every morning |
    in january | in april | in july | in october | during the holidays | after the rain"""
