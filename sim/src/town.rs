//! The town: households, workplaces, schools, shops and bus routes, and each
//! person's day (where they are, minute by minute).

use rand_chacha::ChaCha20Rng;

use super::params::TownParams;
use super::rng::{Purpose, chance, int, pick, range, stream, unif};
use super::tracing::Relay;

/// Minutes in a day.
pub(crate) const DAY_MIN: i32 = 1440;
/// Bus departures per route and day (every 10 minutes).
const BUS_SLOTS: u32 = 144;
/// Up at 07:00 (bedroom → living room).
const WAKE: i32 = 7 * 60;
/// To bed at 23:00.
const SLEEP: i32 = 23 * 60;
/// Seat of a teacher (at the front of the class).
pub(crate) const FRONT_SEAT: u16 = u16::MAX;
/// Largest office room (people).
const OFFICE_ROOM: usize = 10;

/// How positions are found in a room.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Layout {
    /// People move: a fresh uniform position over `w × h` metres every
    /// `period` minutes (living rooms, shops). `Spot::Seat(k)` is a fixed
    /// spot (a shop counter).
    Roaming { w: f32, h: f32, period: i32 },
    /// Desks or school seats on a grid, `spacing` metres apart.
    Grid { cols: u16, spacing: f32 },
    /// Bedrooms of one household: two beds per room, 1 m apart; rooms 4 m
    /// apart with a wall between.
    Beds,
    /// One uniform position per stay over `w × h` (a bus ride).
    Visit { w: f32, h: f32 },
    /// Positions given with each stay (scripted worlds).
    Fixed,
}

/// A room: a place where people can hear each other.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Room {
    pub(crate) layout: Layout,
    pub(crate) kind: RoomKind,
}

/// What a room is (for the statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RoomKind {
    Home,
    Work,
    School,
    Shop,
    Bus,
    Other,
}

impl RoomKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RoomKind::Home => "home",
            RoomKind::Work => "work",
            RoomKind::School => "school",
            RoomKind::Shop => "shop",
            RoomKind::Bus => "bus",
            RoomKind::Other => "other",
        }
    }
}

/// Where in the room a person is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Spot {
    Seat(u16),
    At(f32, f32),
    Free,
}

/// One stay: `agent` in `room` from minute `start` to `end` (absolute
/// minutes from the start of the run).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Presence {
    pub(crate) agent: u32,
    pub(crate) room: u32,
    pub(crate) start: i32,
    pub(crate) end: i32,
    pub(crate) spot: Spot,
}

impl Presence {
    /// `agent` at `spot` in `room` from `s` to `e`, minutes into the day
    /// that starts at minute `base`.
    fn of_day(agent: u32, room: u32, spot: Spot, base: i32, (s, e): (i32, i32)) -> Presence {
        Presence {
            agent,
            room,
            start: base + s,
            end: base + e,
            spot,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Toddler,
    Pupil,
    Worker,
    AtHome,
    Elder,
}

#[derive(Clone, Debug)]
struct Person {
    role: Role,
    nb: u32,
    living: u32,
    bedroom: u32,
    bed: u16,
    job: Option<(u32, u16)>,
    bus_ride: Option<i32>,
    leave: i32,
    stay: i32,
}

/// The generated town.
#[derive(Clone, Debug)]
pub(crate) struct Town {
    people: Vec<Person>,
    pub(crate) rooms: Vec<Room>,
    households: Vec<Vec<u32>>,
    nb_households: Vec<Vec<u32>>,
    nb_shops: Vec<Vec<u32>>,
    bus_base: u32,
    /// Counts for the report.
    pub(crate) stats: TownStats,
}

/// What the town is made of.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TownStats {
    /// Households.
    pub households: u32,
    /// Neighbourhoods (each with shops and a bus route).
    pub neighbourhoods: u32,
    /// Workplaces (offices; shop staff and teachers work in shops and schools).
    pub workplaces: u32,
    /// School classes.
    pub classes: u32,
    /// Shops.
    pub shops: u32,
    /// Pupils.
    pub pupils: u32,
    /// Workers.
    pub workers: u32,
    /// Bus commuters.
    pub bus_commuters: u32,
}

fn add_room(rooms: &mut Vec<Room>, kind: RoomKind, layout: Layout) -> u32 {
    rooms.push(Room { layout, kind });
    (rooms.len() - 1) as u32
}

/// Adds a room of desks in a grid, `cols` wide and `spacing_m` apart.
fn add_grid_room(rooms: &mut Vec<Room>, kind: RoomKind, cols: u16, spacing_m: f64) -> u32 {
    let spacing = spacing_m as f32;
    add_room(rooms, kind, Layout::Grid { cols, spacing })
}

fn shuffle<T>(rng: &mut ChaCha20Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = int(rng, 0, i as u32) as usize;
        v.swap(i, j);
    }
}

impl Town {
    /// Builds a town of `n` people.
    pub(crate) fn generate(n: u32, p: &TownParams, seed: u64) -> Town {
        let mut rng = stream(seed, Purpose::Town, 0, 0);
        let mut rooms = Vec::new();
        let mut people: Vec<Person> = Vec::with_capacity(n as usize);
        let mut households: Vec<Vec<u32>> = Vec::new();
        let mut nb_households: Vec<Vec<u32>> = Vec::new();
        while (people.len() as u32) < n {
            let left = n - people.len() as u32;
            let size = (pick(&mut rng, &p.household_sizes) as u32 + 1).min(left);
            let mut roles = Vec::new();
            let child = |rng: &mut ChaCha20Rng| {
                if int(rng, 0, 17) < 5 {
                    Role::Toddler
                } else {
                    Role::Pupil
                }
            };
            let adult = |rng: &mut ChaCha20Rng| {
                if chance(rng, p.employment) {
                    Role::Worker
                } else {
                    Role::AtHome
                }
            };
            match size {
                1 => roles.push(if chance(&mut rng, 0.3) {
                    Role::Elder
                } else {
                    adult(&mut rng)
                }),
                2 => {
                    let x = unif(&mut rng);
                    if x < 0.25 {
                        roles.extend([Role::Elder, Role::Elder]);
                    } else if x < 0.4 {
                        roles.push(adult(&mut rng));
                        roles.push(child(&mut rng));
                    } else {
                        roles.push(adult(&mut rng));
                        roles.push(adult(&mut rng));
                    }
                }
                _ => {
                    roles.push(adult(&mut rng));
                    roles.push(adult(&mut rng));
                    for _ in 2..size {
                        roles.push(child(&mut rng));
                    }
                    if size >= 4 && chance(&mut rng, 0.25) {
                        roles[size as usize - 1] = Role::Elder;
                    }
                }
            }
            let nb = people.len() as u32 / p.neighbourhood_size.max(1);
            let w = 4.0 + size as f32;
            let living = add_room(
                &mut rooms,
                RoomKind::Home,
                Layout::Roaming {
                    w,
                    h: 5.0,
                    period: 30,
                },
            );
            let bedroom = add_room(&mut rooms, RoomKind::Home, Layout::Beds);
            let hh = households.len() as u32;
            let mut members = Vec::new();
            for (bed, role) in roles.into_iter().enumerate() {
                members.push(people.len() as u32);
                people.push(Person {
                    role,
                    nb,
                    living,
                    bedroom,
                    bed: bed as u16,
                    job: None,
                    bus_ride: None,
                    leave: 0,
                    stay: 0,
                });
            }
            households.push(members);
            if nb_households.len() <= nb as usize {
                nb_households.resize(nb as usize + 1, Vec::new());
            }
            nb_households[nb as usize].push(hh);
        }
        let nbs = nb_households.len() as u32;
        // Shops.
        let mut nb_shops = Vec::new();
        let mut shop_rooms = Vec::new();
        for hhs in &nb_households {
            let residents: usize = hhs.iter().map(|&h| households[h as usize].len()).sum();
            let count = (residents as u32 / p.residents_per_shop.max(1)).max(1);
            let mut mine = Vec::new();
            for _ in 0..count {
                let r = add_room(
                    &mut rooms,
                    RoomKind::Shop,
                    Layout::Roaming {
                        w: range(&mut rng, 10.0, 25.0) as f32,
                        h: range(&mut rng, 8.0, 20.0) as f32,
                        period: 5,
                    },
                );
                mine.push(r);
                shop_rooms.push(r);
            }
            nb_shops.push(mine);
        }
        // Classes: pupils by neighbourhood, in classes of `class_size`.
        let pupils: Vec<u32> = (0..people.len() as u32)
            .filter(|&i| people[i as usize].role == Role::Pupil)
            .collect();
        let mut classes = Vec::new();
        for group in pupils.chunks(p.class_size.max(1) as usize) {
            let room = add_grid_room(&mut rooms, RoomKind::School, 5, range(&mut rng, 1.2, 1.6));
            let mut seats: Vec<u16> = (0..group.len() as u16).collect();
            shuffle(&mut rng, &mut seats);
            for (&pupil, &seat) in group.iter().zip(&seats) {
                let ride = 10 + int(&mut rng, 0, 20) as i32;
                let bus = chance(&mut rng, p.bus_share);
                let person = &mut people[pupil as usize];
                person.job = Some((room, seat));
                person.bus_ride = bus.then_some(ride);
                person.leave = 8 * 60 - if bus { ride } else { 15 } - int(&mut rng, 0, 10) as i32;
                person.stay = 7 * 60;
            }
            classes.push(room);
        }
        // Workers: teachers, shop staff, then offices.
        let mut workers: Vec<u32> = (0..people.len() as u32)
            .filter(|&i| people[i as usize].role == Role::Worker)
            .collect();
        shuffle(&mut rng, &mut workers);
        let mut next = 0usize;
        let mut take = |k: usize| {
            let s = &workers[next.min(workers.len())..(next + k).min(workers.len())];
            next += s.len();
            s.to_vec()
        };
        let mut jobs: Vec<(u32, u32, u16, i32)> = Vec::new(); // (worker, room, seat, start)
        for &class in &classes {
            for w in take(1) {
                jobs.push((w, class, FRONT_SEAT, 7 * 60 + 45));
            }
        }
        for &shop in &shop_rooms {
            for (k, w) in take(2).into_iter().enumerate() {
                jobs.push((w, shop, k as u16, 8 * 60 + 30));
            }
        }
        let mut workplaces = 0u32;
        let office_sizes = [
            (2u32, 5u32, 0.35),
            (6, 15, 0.35),
            (16, 50, 0.22),
            (51, 200, 0.08),
        ];
        let weights: Vec<f64> = office_sizes.iter().map(|s| s.2).collect();
        loop {
            let (lo, hi, _) = office_sizes[pick(&mut rng, &weights)];
            let staff = take(int(&mut rng, lo, hi) as usize);
            if staff.is_empty() {
                break;
            }
            workplaces += 1;
            for team in staff.chunks(OFFICE_ROOM) {
                let room = add_grid_room(&mut rooms, RoomKind::Work, 4, range(&mut rng, 1.8, 3.2));
                for (seat, &w) in team.iter().enumerate() {
                    let start = int(&mut rng, 7 * 60, 9 * 60) as i32;
                    jobs.push((w, room, seat as u16, start));
                }
            }
        }
        let mut bus_commuters = 0;
        for (w, room, seat, start) in jobs {
            let ride = 10 + int(&mut rng, 0, 25) as i32;
            let bus = chance(&mut rng, p.bus_share);
            let stay = int(&mut rng, 8 * 60, 9 * 60 + 30) as i32;
            let person = &mut people[w as usize];
            person.job = Some((room, seat));
            person.bus_ride = bus.then_some(ride);
            person.leave = start - if bus { ride } else { 15 };
            person.stay = stay;
        }
        for person in &people {
            if person.bus_ride.is_some() {
                bus_commuters += 1;
            }
        }
        let bus_base = rooms.len() as u32;
        for _ in 0..nbs * BUS_SLOTS {
            add_room(&mut rooms, RoomKind::Bus, Layout::Visit { w: 12.0, h: 2.5 });
        }
        let stats = TownStats {
            households: households.len() as u32,
            neighbourhoods: nbs,
            workplaces,
            classes: classes.len() as u32,
            shops: shop_rooms.len() as u32,
            pupils: pupils.len() as u32,
            workers: workers.len() as u32,
            bus_commuters,
        };
        Town {
            people,
            rooms,
            households,
            nb_households,
            nb_shops,
            bus_base,
            stats,
        }
    }

    /// Number of people.
    pub(crate) fn len(&self) -> usize {
        self.people.len()
    }

    /// The replay attacker's places: it records in every shop but one, and
    /// replays in that one (the first shop of the second neighbourhood).
    pub(crate) fn attack_shops(&self) -> (Vec<u32>, u32) {
        let all: Vec<u32> = self.nb_shops.iter().flatten().copied().collect();
        let replay = self
            .nb_shops
            .get(1)
            .and_then(|s| s.first())
            .or_else(|| all.last())
            .copied()
            .unwrap_or(0);
        let mut record: Vec<u32> = all.into_iter().filter(|&r| r != replay).collect();
        record.sort_unstable();
        (record, replay)
    }

    fn bus(&self, nb: u32, minute_of_day: i32) -> u32 {
        let slot = (minute_of_day.clamp(0, DAY_MIN - 1) / 10) as u32;
        self.bus_base + nb * BUS_SLOTS + slot
    }

    /// Appends `agent`'s stays on `day` to `out`. `home_only`: isolation or
    /// quarantine.
    pub(crate) fn plan(
        &self,
        agent: u32,
        day: u32,
        home_only: bool,
        p: &TownParams,
        seed: u64,
        out: &mut Vec<Presence>,
    ) {
        let person = &self.people[agent as usize];
        let base = day as i32 * DAY_MIN;
        let mut rng = stream(seed, Purpose::Plan, u64::from(agent), u64::from(day));
        // Away stays (minute of day, minute of day, room, spot), in order.
        let mut away: Vec<(i32, i32, u32, Spot)> = Vec::new();
        let weekend = day % 7 >= 5;
        if !home_only {
            if weekend {
                if chance(&mut rng, p.weekend_shop) {
                    let shop = self.shop(person.nb, &mut rng);
                    let s = int(&mut rng, 9 * 60, 12 * 60) as i32;
                    away.push((s, s + int(&mut rng, 15, 60) as i32, shop, Spot::Free));
                }
                if chance(&mut rng, p.weekend_visit) {
                    let hhs = &self.nb_households[person.nb as usize];
                    let host = hhs[int(&mut rng, 0, hhs.len() as u32 - 1) as usize];
                    let room = self.people[self.households[host as usize][0] as usize].living;
                    if room != person.living {
                        let s = int(&mut rng, 13 * 60, 17 * 60) as i32;
                        away.push((s, s + int(&mut rng, 60, 180) as i32, room, Spot::Free));
                    }
                }
            } else {
                match (person.role, person.job) {
                    (Role::Worker | Role::Pupil, Some((room, seat))) => {
                        let mut t = person.leave + int(&mut rng, 0, 20) as i32 - 10;
                        if let Some(ride) = person.bus_ride {
                            away.push((t, t + ride, self.bus(person.nb, t), Spot::Free));
                            t += ride;
                        } else {
                            t += 15;
                        }
                        away.push((t, t + person.stay, room, Spot::Seat(seat)));
                        t += person.stay;
                        if let Some(ride) = person.bus_ride {
                            away.push((t, t + ride, self.bus(person.nb, t), Spot::Free));
                            t += ride;
                        } else {
                            t += 15;
                        }
                        let shop_p = if person.role == Role::Worker {
                            p.weekday_shop
                        } else {
                            0.1
                        };
                        if chance(&mut rng, shop_p) {
                            let shop = self.shop(person.nb, &mut rng);
                            away.push((t, t + int(&mut rng, 10, 40) as i32, shop, Spot::Free));
                        }
                    }
                    (Role::AtHome | Role::Elder, _) if chance(&mut rng, p.weekday_shop) => {
                        let shop = self.shop(person.nb, &mut rng);
                        let s = int(&mut rng, 9 * 60, 19 * 60) as i32;
                        away.push((s, s + int(&mut rng, 15, 60) as i32, shop, Spot::Free));
                    }
                    _ => {}
                }
            }
        }
        let mut t = 0;
        for (s, e, room, spot) in away {
            let e = e.min(SLEEP);
            if s < t || e <= s {
                continue;
            }
            self.home(agent, base, t, s, out);
            out.push(Presence::of_day(agent, room, spot, base, (s, e)));
            t = e;
        }
        self.home(agent, base, t, DAY_MIN, out);
    }

    fn shop(&self, nb: u32, rng: &mut ChaCha20Rng) -> u32 {
        let shops = &self.nb_shops[nb as usize];
        shops[int(rng, 0, shops.len() as u32 - 1) as usize]
    }

    /// Home from `from` to `to` (minutes of the day): bedroom before 07:00
    /// and after 23:00, living room in between.
    fn home(&self, agent: u32, base: i32, from: i32, to: i32, out: &mut Vec<Presence>) {
        let person = &self.people[agent as usize];
        for (lo, hi, room, spot) in [
            (0, WAKE, person.bedroom, Spot::Seat(person.bed)),
            (WAKE, SLEEP, person.living, Spot::Free),
            (SLEEP, DAY_MIN, person.bedroom, Spot::Seat(person.bed)),
        ] {
            let (s, e) = (from.max(lo), to.min(hi));
            if s < e {
                out.push(Presence::of_day(agent, room, spot, base, (s, e)));
            }
        }
    }
}

/// Where the people are.
pub(crate) enum World {
    Town(Town),
    Script {
        rooms: Vec<Room>,
        people: u32,
        days: std::collections::BTreeMap<u32, Vec<Presence>>,
        /// (agent, result minute, window first day)
        positives: Vec<(u32, i32, i32)>,
        relay: Option<Relay>,
    },
}

impl World {
    pub(crate) fn rooms(&self) -> &[Room] {
        match self {
            World::Town(t) => &t.rooms,
            World::Script { rooms, .. } => rooms,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            World::Town(t) => t.len(),
            World::Script { people, .. } => *people as usize,
        }
    }
}
