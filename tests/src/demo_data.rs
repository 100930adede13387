//! Deterministic demo data for both fakes: a VAN database with survey questions, activist
//! codes and the usual lookups, and a LiveVox account with a day of calls before "today".
//! Names are obviously made up and every phone number is a 555-01xx number.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;

use crate::fake_livevox::{
    CallCenter, CallDetail, Campaign, EpochMs, LiveVoxData, Service, TermCode, start_of_day_ms,
};
use crate::fake_van::{
    ActivistCode, ContactType, Credential, InputType, Person, Phone, ResultCode, Status,
    SurveyQuestion, SurveyResponse, VanData,
};

/// The application name both demo VAN keys belong to.
pub const VAN_APPLICATION: &str = "callsync-demo";
/// Works in VoterFile mode (0) only.
pub const VAN_VOTERFILE_KEY: &str = "demo-van-key";
/// Works in MyCampaign mode (1) only.
pub const VAN_MYCAMPAIGN_KEY: &str = "demo-myc-key";

pub const LV_ACCESS_TOKEN: &str = "demo-lv-access";
pub const LV_CLIENT: &str = "callsync-demo";
pub const LV_USER: &str = "demo";
pub const LV_PASSWORD: &str = "demo-password";

/// The "today" of [`LiveVoxData::demo`]: the demo calls happened the day before.
pub fn demo_today() -> Date {
    jiff::civil::date(2026, 11, 4)
}

/// The demo people: (vanId, first, last, phone digits, email).
const PEOPLE: [(u64, &str, &str, &str, &str); 6] = [
    (
        18372073,
        "Alex",
        "Sample",
        "2125550101",
        "alex.sample@example.com",
    ),
    (
        18372080,
        "Jordan",
        "Example",
        "2125550102",
        "jordan.example@example.com",
    ),
    (
        18372087,
        "Casey",
        "Placeholder",
        "2125550103",
        "casey.placeholder@example.com",
    ),
    (
        18372094,
        "Riley",
        "Testcase",
        "2125550104",
        "riley.testcase@example.com",
    ),
    (
        18372101,
        "Morgan",
        "Demo",
        "2125550105",
        "morgan.demo@example.com",
    ),
    (
        18372108,
        "Taylor",
        "Fixture",
        "2125550106",
        "taylor.fixture@example.com",
    ),
];

const SUPPORT: &[&str] = &[
    "Strong support",
    "Lean support",
    "Undecided",
    "Lean oppose",
    "Strong oppose",
];
const YES_NO: &[&str] = &["Yes", "No"];
const YES_NO_MAYBE: &[&str] = &["Yes", "No", "Maybe"];
const VOTE_PLAN: &[&str] = &["Early vote", "Election day", "By mail", "Not voting"];
const ISSUES: &[&str] = &[
    "Economy",
    "Health care",
    "Education",
    "Housing",
    "Public safety",
    "Climate",
];

/// (name, type, responses, active); question i gets id 2300 + i and response ids 9100 + 20·i + j.
const QUESTIONS: [(&str, &str, &[&str], bool); 30] = [
    ("Support for Smith", "Candidate", SUPPORT, true),
    ("Support for Jones", "Candidate", SUPPORT, true),
    ("Support for Rivera", "Candidate", SUPPORT, true),
    ("Support for Okafor", "Candidate", SUPPORT, true),
    ("Support for Lindqvist", "Candidate", SUPPORT, true),
    ("Support for Smith (primary)", "Candidate", SUPPORT, false),
    ("Vote plan", "GOTV", VOTE_PLAN, true),
    ("Needs a ride to the polls", "GOTV", YES_NO, true),
    ("Knows polling place", "GOTV", YES_NO, true),
    ("Already voted", "GOTV", YES_NO, true),
    ("Wants a mail ballot", "GOTV", YES_NO_MAYBE, true),
    ("Top issue", "Issue", ISSUES, true),
    ("Support for Measure 1", "Issue", SUPPORT, true),
    ("Support for Measure 2", "Issue", SUPPORT, true),
    ("Transit funding", "Issue", YES_NO_MAYBE, true),
    ("School bond", "Issue", YES_NO_MAYBE, true),
    ("Rent stabilization", "Issue", YES_NO_MAYBE, true),
    ("Measure 0 (withdrawn)", "Issue", YES_NO, false),
    ("Volunteer interest", "Volunteer", YES_NO_MAYBE, true),
    ("Can host an event", "Volunteer", YES_NO_MAYBE, true),
    ("Will make calls", "Volunteer", YES_NO_MAYBE, true),
    ("Will knock doors", "Volunteer", YES_NO_MAYBE, true),
    ("Will put up a yard sign", "Volunteer", YES_NO, true),
    ("Will donate", "Volunteer", YES_NO_MAYBE, true),
    (
        "Preferred language",
        "Contact",
        &["English", "Spanish", "Other"],
        true,
    ),
    (
        "Best time to call",
        "Contact",
        &["Morning", "Afternoon", "Evening"],
        true,
    ),
    ("Old survey 2024", "Candidate", SUPPORT, false),
    ("Heard of Smith", "Candidate", YES_NO, true),
    (
        "Favourability of Smith",
        "Candidate",
        &["Favourable", "Neutral", "Unfavourable"],
        true,
    ),
    (
        "Likely to vote",
        "GOTV",
        &["Certain", "Likely", "Unlikely", "Will not vote"],
        true,
    ),
];

/// (name, type, active); code i gets id 4400 + i.
const ACTIVIST_CODES: [(&str, &str, bool); 20] = [
    ("Volunteer prospect", "Volunteer", true),
    ("Phone bank volunteer", "Volunteer", true),
    ("Canvass volunteer", "Volunteer", true),
    ("Yard sign", "Action", true),
    ("Event RSVP", "Action", true),
    ("Donor prospect", "Action", true),
    ("Wants mail ballot", "Action", true),
    ("Needs ride to polls", "Action", true),
    ("Spanish speaker", "Constituency", true),
    ("Union member", "Constituency", true),
    ("Student", "Constituency", true),
    ("Veteran", "Constituency", true),
    ("Senior", "Constituency", true),
    ("Small business owner", "Constituency", true),
    ("Host house party", "Volunteer", true),
    ("Poll watcher", "Volunteer", true),
    ("Do not text", "Action", true),
    ("Volunteer 2024", "Volunteer", false),
    ("Legacy import", "Action", false),
    ("Retired code", "Action", false),
];

/// (id, name, short name); the first six ids are the "commonly seen" ones, the rest are
/// this database's own.
const RESULT_CODES: [(u64, &str, &str); 14] = [
    (4, "Deceased", "DE"),
    (13, "Come Back", "CB"),
    (14, "Canvassed", "CV"),
    (17, "Call Back", "CL"),
    (18, "Busy", "BZ"),
    (22, "Do Not Call", "DN"),
    (25, "Disconnected", "DS"),
    (1, "Not Home", "NH"),
    (2, "Refused", "RF"),
    (3, "Hostile", "HO"),
    (5, "Moved", "MV"),
    (16, "Left Message", "LM"),
    (20, "Wrong Number", "WN"),
    (21, "Language Barrier", "LB"),
];

fn truncated(name: &str, max: usize) -> String {
    let cut: String = name.chars().take(max).collect();
    cut.trim_end().to_string()
}

impl VanData {
    /// The demo database; see the module docs and the constants above for what is in it.
    pub fn demo() -> VanData {
        let credentials = vec![
            Credential {
                application_name: VAN_APPLICATION.into(),
                api_key: VAN_VOTERFILE_KEY.into(),
                db_mode: 0,
            },
            Credential {
                application_name: VAN_APPLICATION.into(),
                api_key: VAN_MYCAMPAIGN_KEY.into(),
                db_mode: 1,
            },
        ];
        let survey_questions = QUESTIONS
            .iter()
            .enumerate()
            .map(|(i, (name, kind, responses, active))| SurveyQuestion {
                survey_question_id: 2300 + i as u64,
                kind: (*kind).into(),
                cycle: 2026,
                name: (*name).into(),
                medium_name: truncated(name, 20),
                short_name: truncated(name, 10),
                script_question: format!("{name}?"),
                status: if *active {
                    Status::Active
                } else {
                    Status::Inactive
                },
                responses: responses
                    .iter()
                    .enumerate()
                    .map(|(j, response)| SurveyResponse {
                        survey_response_id: 9100 + 20 * i as u64 + j as u64,
                        name: (*response).into(),
                        medium_name: truncated(response, 20),
                        short_name: truncated(response, 10),
                    })
                    .collect(),
            })
            .collect();
        let activist_codes = ACTIVIST_CODES
            .iter()
            .enumerate()
            .map(|(i, (name, kind, active))| ActivistCode {
                activist_code_id: 4400 + i as u64,
                kind: (*kind).into(),
                name: (*name).into(),
                medium_name: truncated(name, 20),
                short_name: truncated(name, 10),
                description: format!("{name} (demo)"),
                script_question: format!("Mark: {name}"),
                status: if *active {
                    Status::Active
                } else {
                    Status::Inactive
                },
            })
            .collect();
        let result_codes = RESULT_CODES
            .iter()
            .map(|(id, name, short)| ResultCode {
                result_code_id: *id,
                name: (*name).into(),
                medium_name: (*name).into(),
                short_name: (*short).into(),
            })
            .collect();
        let contact_types = [
            (1, "Phone", "Phone"),
            (2, "Walk", "Walk"),
            (19, "Auto Dial", "Phone"),
            (37, "SMS Text", "SMS"),
            (67, "Phone Bank", "Phone"),
        ]
        .into_iter()
        .map(|(id, name, channel)| ContactType {
            contact_type_id: id,
            name: name.into(),
            channel_type_name: channel.into(),
        })
        .collect();
        let input_types = [(2, "Manual"), (4, "Bulk"), (11, "API")]
            .into_iter()
            .map(|(id, name)| InputType {
                input_type_id: id,
                name: name.into(),
            })
            .collect();
        let people: BTreeMap<u64, Person> = PEOPLE
            .iter()
            .enumerate()
            .map(|(i, (van_id, first, last, phone, email))| {
                let person = Person {
                    van_id: *van_id,
                    first_name: (*first).into(),
                    last_name: (*last).into(),
                    phones: vec![Phone {
                        phone_id: 5_000_001 + i as u64,
                        phone_number: (*phone).into(),
                    }],
                    emails: vec![(*email).into()],
                };
                (*van_id, person)
            })
            .collect();
        let known_van_ids = demo_van_ids()
            .filter(|id| !people.contains_key(id))
            .collect();
        let mycampaign_ids = demo_mycampaign_ids().collect();
        VanData {
            credentials,
            survey_questions,
            activist_codes,
            result_codes,
            contact_types,
            input_types,
            people,
            known_van_ids,
            mycampaign_ids,
        }
    }
}

/// Every VoterFile VAN id the demo's calls carry: the LiveVox demo days and a CDR night of
/// up to [`DEMO_NIGHT_CALLS`] calls.
pub fn demo_van_ids() -> impl Iterator<Item = u64> {
    let livevox = (0..CALLS_YESTERDAY + CALLS_DAY_BEFORE).map(livevox_van_id);
    let night = (0..DEMO_NIGHT_CALLS).map(night_van_id);
    livevox.chain(night).collect::<BTreeSet<u64>>().into_iter()
}

/// Every MyCampaign id the demo's calls carry (the LiveVox demo's `ny14-myc-…` accounts).
pub fn demo_mycampaign_ids() -> impl Iterator<Item = u64> {
    (0..CALLS_YESTERDAY + CALLS_DAY_BEFORE).map(myc_id)
}

/// The VAN id of LiveVox demo call `n`.
fn livevox_van_id(n: u64) -> u64 {
    PEOPLE.get(n as usize).map_or(18_372_073 + 7 * n, |p| p.0)
}

/// The MyCampaign id some LiveVox demo accounts carry instead.
fn myc_id(n: u64) -> u64 {
    100_200 + n
}

/// The VAN id of call `n` of [`cdr_night`].
fn night_van_id(n: u64) -> u64 {
    18_000_000 + n * 7
}

/// The agent dispositions every service has, then the system results.
const AGENT_CODES: [&str; 9] = [
    "Agent Cust 1",
    "Agent Cust 2",
    "Agent Cust 3",
    "Agent Cust 4",
    "Agent Cust 5",
    "Agent Cust 6",
    "Agent Cust 7",
    "Agent Cust 8",
    "AGENT - CUST RPC 3",
];
const SYSTEM_RESULTS: [&str; 8] = [
    "No Answer",
    "Busy",
    "Answering Machine (Hung Up)",
    "Machine Left Message",
    "Invalid Phone Number",
    "Hung Up in Opening",
    "Operator Transfer",
    "Fax",
];
const AGENT_CATEGORY: u64 = 1;
const SYSTEM_CATEGORY: u64 = 2;

/// (serviceId, name, callCenterId); service k's term codes start at 167 + 100·k.
const SERVICES: [(u64, &str, u64); 3] = [
    (1001, "NY-14 Persuasion", 10),
    (1002, "NY-14 GOTV", 10),
    (1003, "PA-07 Volunteer Recruit", 20),
];

const FIRST_NAMES: [&str; 8] = [
    "Alex", "Jordan", "Casey", "Riley", "Morgan", "Taylor", "Jamie", "Sam",
];
const LAST_NAMES: [&str; 8] = [
    "Sample",
    "Example",
    "Placeholder",
    "Testcase",
    "Demo",
    "Fixture",
    "Mockup",
    "Dummy",
];

/// How many calls each demo day has.
const CALLS_YESTERDAY: u64 = 36;
const CALLS_DAY_BEFORE: u64 = 4;

fn term_codes() -> Vec<TermCode> {
    let mut codes = Vec::new();
    for (k, (service_id, _, _)) in SERVICES.iter().enumerate() {
        let base = 167 + 100 * k as u64;
        let names = AGENT_CODES.iter().chain(SYSTEM_RESULTS.iter());
        for (j, name) in names.enumerate() {
            let agent = j < AGENT_CODES.len();
            codes.push(TermCode {
                id: base + j as u64,
                name: (*name).into(),
                service_id: *service_id,
                term_category_id: if agent {
                    AGENT_CATEGORY
                } else {
                    SYSTEM_CATEGORY
                },
                lv_result_id: if agent {
                    700 + j as u64
                } else {
                    1 + (j - AGENT_CODES.len()) as u64
                },
                report_order: j as u32 + 1,
            });
        }
    }
    codes
}

/// The account text for call `n`: mostly VoterFile ids of the `district-van-id` form, with a
/// few MyCampaign ids, other conventions, test rows and one that no pattern can parse.
fn account_for(n: u64, van_id: u64) -> String {
    match n % 12 {
        5 => format!("ny14-myc-{}", myc_id(n)),
        7 => format!("MYV-NY-{van_id}"),
        9 if n < 24 => format!("TEST123{n:03}"),
        10 => van_id.to_string(),
        11 if n == 23 => "walk-in-no-account".into(),
        _ => format!("ny14-van-{van_id}"),
    }
}

/// Call `n` of the demo set; `age` is 0 for yesterday's list, 1 for the day before's.
fn call(n: u64, age: u64, day_start_ms: i64, codes: &[TermCode]) -> CallDetail {
    let service_index = (n % 3) as usize;
    let (service_id, _, _) = SERVICES[service_index];
    let service_codes: Vec<&TermCode> = codes
        .iter()
        .filter(|c| c.service_id == service_id)
        .collect();
    let code = service_codes[(n as usize * 5) % service_codes.len()];
    let agent = code.term_category_id == AGENT_CATEGORY;
    let person = PEOPLE.get(n as usize);
    let van_id = livevox_van_id(n);
    let first = person.map_or(FIRST_NAMES[(n % 8) as usize], |p| p.1);
    let last = person.map_or(LAST_NAMES[((n / 8) % 8) as usize], |p| p.2);
    let phone = person.map_or_else(
        || format!("212555{:04}", 100 + (n % 100)),
        |p| p.3.to_string(),
    );
    // Calls run from 14:00 UTC, about one every eleven minutes.
    let start =
        day_start_ms + 14 * 3_600_000 + n as i64 * 11 * 60_000 + (n as i64 * 7_919) % 60_000;
    let seconds = if agent {
        45 + (n * 37) % 300
    } else {
        5 + (n * 13) % 40
    };
    let end = start + seconds as i64 * 1000;
    CallDetail {
        call_id: 101_312_525_040 + n,
        account: account_for(n, van_id),
        first_name: first.into(),
        last_name: last.into(),
        phone_dialed: phone,
        start: if n % 3 == 1 {
            EpochMs::Digits(start)
        } else {
            EpochMs::Number(start)
        },
        end: if n % 2 == 1 {
            EpochMs::Digits(end)
        } else {
            EpochMs::Number(end)
        },
        agent_login: agent.then(|| format!("agent{:02}", 1 + n % 5)),
        term_code_id: Some(code.id),
        result: code.name.clone(),
        service_id,
        campaign_id: 50_000 + service_index as u64 * 10 + age,
    }
}

impl LiveVoxData {
    /// The demo account with [`demo_today`] as today.
    pub fn demo() -> LiveVoxData {
        LiveVoxData::demo_for(demo_today())
    }

    /// The demo account with `today` as today: 36 calls on the day before (UTC) and 4 on
    /// the day before that, across three services.
    pub fn demo_for(today: Date) -> LiveVoxData {
        let yesterday = start_of_day_ms(today) - 86_400_000;
        let day_before = yesterday - 86_400_000;
        let term_codes = term_codes();
        let mut call_details: Vec<CallDetail> = (0..CALLS_YESTERDAY)
            .map(|n| call(n, 0, yesterday, &term_codes))
            .collect();
        call_details.extend(
            (0..CALLS_DAY_BEFORE).map(|n| call(CALLS_YESTERDAY + n, 1, day_before, &term_codes)),
        );
        let campaigns = SERVICES
            .iter()
            .enumerate()
            .flat_map(|(k, (service_id, name, _))| {
                [(yesterday, 0), (day_before, 1)]
                    .into_iter()
                    .map(move |(day, age)| Campaign {
                        id: 50_000 + k as u64 * 10 + age,
                        name: format!("{name} list {}", 1 + age),
                        type_id: 1,
                        service_id: *service_id,
                        status: "Played".into(),
                        upload_date: if age == 0 {
                            EpochMs::Number(day + 12 * 3_600_000)
                        } else {
                            EpochMs::Digits(day + 12 * 3_600_000)
                        },
                    })
            })
            .collect();
        LiveVoxData {
            access_token: LV_ACCESS_TOKEN.into(),
            client_name: LV_CLIENT.into(),
            user_name: LV_USER.into(),
            password: LV_PASSWORD.into(),
            call_centers: vec![
                CallCenter {
                    call_center_id: 10,
                    name: "Main Call Center".into(),
                },
                CallCenter {
                    call_center_id: 20,
                    name: "Overflow Call Center".into(),
                },
            ],
            services: SERVICES
                .iter()
                .map(|(id, name, call_center)| Service {
                    service_id: *id,
                    name: (*name).into(),
                    call_center_id: *call_center,
                })
                .collect(),
            term_codes,
            campaigns,
            call_details,
            today,
        }
    }
}

/// Results of the demo night and how often each comes up, per thousand calls: mostly
/// results the demo mapping knows, a few it does not (they become unattempted errors
/// until a row is added), with LiveVox's own spellings (`Agent Cust 1 (167)`).
const NIGHT_RESULTS: [(&str, u64); 10] = [
    ("Agent Cust 1 (167)", 140),
    ("Agent Cust 2 (168)", 110),
    ("Agent Cust 3 (169)", 50),
    ("Busy", 80),
    ("No Answer", 400),
    ("Hung Up in Opening", 150),
    ("Machine Left Message", 40),
    ("AGENT - CUST RPC 3", 10),
    ("Answering Machine (Hung Up)", 15),
    ("Agent Cust 8 (174)", 5),
];

/// How many calls the demo's night has; the demo VAN database knows every person of a
/// [`cdr_night`] this long (a longer night's later calls are people VAN does not know).
pub const DEMO_NIGHT_CALLS: u64 = 2_000;

/// The standard LiveVox CDR export header.
pub const CDR_HEADER: &str = "id,account number,first name,last name,phone dialed,connect time,start time,finish time,caller login,result,campaign id";

/// A CDR export of `calls` calls made on `date` (local wall-clock times), as a campaign
/// would download it from the LiveVox portal: calls from 09:00 to 21:00, a few just
/// before midnight the night before and just after midnight at the end, every 250th
/// a test account, every 500th an account no pattern reads, every 700th a time that
/// cannot exist.
pub fn cdr_night(date: Date, calls: u64) -> String {
    let mut out = String::from(CDR_HEADER);
    out.push('\n');
    let weights: u64 = NIGHT_RESULTS.iter().map(|(_, w)| w).sum();
    let day_seconds = 12 * 3600;
    for n in 0..calls {
        let pick = (n * 7_919) % weights;
        let mut acc = 0;
        let result = NIGHT_RESULTS
            .iter()
            .find(|(_, w)| {
                acc += w;
                pick < acc
            })
            .map_or("No Answer", |(r, _)| r);
        let (day, seconds) = match n {
            // Five calls just before midnight of the day before, five just after the end.
            n if n < 5 => (
                date.yesterday().unwrap_or(date),
                86_400 - 300 + n as i64 * 50,
            ),
            n if n >= calls - 5 => (
                date.tomorrow().unwrap_or(date),
                (n - (calls - 5)) as i64 * 60 + 5,
            ),
            n => (date, 9 * 3600 + (n as i64 * day_seconds) / calls as i64),
        };
        let at = day
            .to_datetime(jiff::civil::Time::midnight())
            .checked_add(jiff::Span::new().seconds(seconds))
            .unwrap_or_default();
        let mut when = at.strftime("%d-%m-%Y %H:%M:%S").to_string();
        if n % 700 == 699 {
            when = "31-02-2026 25:00:00".into();
        }
        let account = match n {
            n if n % 500 == 499 => "walk-in".into(),
            n if n % 250 == 249 => format!("TEST123{n:04}"),
            n => format!("ny14-van-{}", night_van_id(n)),
        };
        let agent = if result.to_lowercase().starts_with("agent") {
            format!("agent{:02}", 1 + n % 5)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{},{account},{},{},212-555-{:04},{when},{when},{when},{agent},{result},{}\n",
            101_400_000_000 + n,
            FIRST_NAMES[(n % 8) as usize],
            LAST_NAMES[((n / 8) % 8) as usize],
            100 + n % 100,
            50_000 + n % 3,
        ));
    }
    out
}
