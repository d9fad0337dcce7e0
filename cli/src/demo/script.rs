//! The scripted day of `meshtrace demo`: households at breakfast, a bus
//! ride, an office, lunch at a café; who is where, second by second, and the
//! ground truth that follows from it.
//!
//! Places are kilometres apart, and inside a place the groups (a household's
//! table, a desk island, a café table) are 25 m apart: beyond the simulated
//! radio range, so people in different groups never hear each other. People
//! in one group sit within 1.5 m of each other. The only time people who are
//! not in one group are within radio range is the 12-minute bus ride:
//! shorter than the 15 minutes a high-risk exposure needs, whatever the
//! signal strength (a minute never weighs more than one).
//!
//! The ground truth is computed from the same trajectories the simulated
//! air uses, at the same instants (one advertising round per second).

use std::f64::consts::PI;

use meshtrace_node::radio::model::{Position, Trajectory};

/// Distance (m) within which time together counts as close contact.
pub(super) const CLOSE_M: f64 = 2.0;
/// Minutes of close contact in the day that make a true contact.
pub(super) const TRUE_CONTACT_MINUTES: u64 = 15;
/// The day starts at this hour (UTC).
pub(super) const DAY_START_HOUR: u64 = 7;

/// Names of the people, in order (the script has room for 64).
pub(super) const NAMES: [&str; 64] = [
    "Ana", "Bea", "Cem", "Dan", "Eva", "Fay", "Gus", "Hal", "Ida", "Jo", "Kim", "Lu", "Mo", "Ned",
    "Ola", "Pia", "Quin", "Rui", "Sam", "Tia", "Uma", "Vic", "Wes", "Xan", "Yui", "Zoe", "Abe",
    "Bo", "Cy", "Di", "Eli", "Finn", "Gia", "Hana", "Ivo", "Jan", "Kai", "Lea", "Max", "Nia",
    "Oto", "Pat", "Rae", "Sol", "Ted", "Una", "Val", "Wim", "Yara", "Zed", "Ari", "Ben", "Cleo",
    "Dev", "Emi", "Flo", "Gil", "Hugo", "Isa", "Jay", "Kit", "Leo", "Mia", "Nico",
];

/// Household sizes, repeated until everyone has a home.
const HOUSEHOLD_SIZES: [usize; 5] = [3, 2, 4, 1, 2];
/// People per desk island and per café table.
const ISLAND_SIZE: usize = 4;
const TABLE_SIZE: usize = 3;
/// Groups inside one place are this far apart (m): beyond radio range.
const GROUP_SPACING_M: f64 = 25.0;
/// Groups per row inside a place.
const GROUPS_PER_ROW: usize = 4;

/// Scene boundaries in minutes after the start of the day.
const BREAKFAST_END: u64 = 40; // 07:00–07:40
const BUS_START: u64 = 45; // 07:45
const BUS_END: u64 = 57; // 07:57
const OFFICE_START: u64 = 60; // 08:00–11:40
const OFFICE_END: u64 = 280;
const CAFE_START: u64 = 285; // 11:45–12:25
const CAFE_END: u64 = 325;
const AFTERNOON_START: u64 = 330; // 12:30, back at the desks
/// The radio day ends (and the test result arrives) this many minutes in.
pub(super) const END_MINUTES: u64 = 345; // 12:45

/// What a person does during the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// Goes to the office (desk island index) and to lunch (café table).
    Worker {
        /// Desk island.
        island: usize,
        /// Café table.
        table: usize,
        /// Bus seat, when they take the bus.
        seat: Option<usize>,
    },
    /// Stays at home all day.
    AtHome,
}

/// One person of the script.
#[derive(Clone, Debug)]
pub(super) struct Person {
    /// First name.
    pub(super) name: &'static str,
    /// Household index.
    pub(super) household: usize,
    /// The day's plan.
    pub(super) role: Role,
    /// Where they are from which second of the day (sorted).
    stays: Vec<(u64, Position)>,
}

/// The scripted day for a number of people.
#[derive(Clone, Debug)]
pub(super) struct Script {
    /// Everyone, in node order.
    pub(super) people: Vec<Person>,
    /// Members of each household.
    pub(super) households: Vec<Vec<usize>>,
    /// Members of each desk island.
    pub(super) islands: Vec<Vec<usize>>,
    /// Members of each café table.
    pub(super) tables: Vec<Vec<usize>>,
    /// Bus riders, by seat.
    pub(super) bus: Vec<usize>,
    /// The person who tests positive.
    pub(super) index: usize,
}

/// What the script says about one person and the index person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Truth {
    /// Seconds within [`CLOSE_M`].
    pub(super) close_seconds: u64,
    /// Seconds within `range_m` (radio range).
    pub(super) in_range_seconds: u64,
}

impl Truth {
    /// True when the close time reaches [`TRUE_CONTACT_MINUTES`].
    pub(super) fn is_contact(&self) -> bool {
        self.close_seconds >= TRUE_CONTACT_MINUTES * 60
    }
}

fn around(center: Position, k: usize, of: usize, radius: f64) -> Position {
    if of <= 1 {
        return center;
    }
    let a = 2.0 * PI * k as f64 / of as f64;
    Position {
        x: center.x + radius * a.cos(),
        y: center.y + radius * a.sin(),
    }
}

fn grid(origin_x: f64, k: usize) -> Position {
    Position {
        x: origin_x + (k % GROUPS_PER_ROW) as f64 * GROUP_SPACING_M,
        y: (k / GROUPS_PER_ROW) as f64 * GROUP_SPACING_M,
    }
}

fn home_seat(h: usize, k: usize, of: usize) -> Position {
    let center = Position {
        x: 10_000.0 + 1_000.0 * h as f64,
        y: 0.0,
    };
    around(center, k, of, 0.6)
}

/// Somewhere on their own, far from everyone (walking, cycling, the test
/// centre).
fn alone(i: usize) -> Position {
    Position {
        x: 200_000.0 + 1_000.0 * i as f64,
        y: 5_000.0,
    }
}

fn bus_seat(k: usize) -> Position {
    Position {
        x: 90_000.0 + (k % 2) as f64 * 0.8,
        y: (k / 2) as f64,
    }
}

fn min(m: u64) -> u64 {
    m * 60
}

impl Script {
    /// The day for `n` people (`n` ≤ [`NAMES`]`.len()`).
    pub(super) fn new(n: usize) -> Script {
        let n = n.min(NAMES.len());
        let mut households: Vec<Vec<usize>> = Vec::new();
        let mut next = 0;
        for size in HOUSEHOLD_SIZES.iter().cycle() {
            if next >= n {
                break;
            }
            let end = (next + size).min(n);
            households.push((next..end).collect());
            next = end;
        }
        // In households of three or more, the last member stays at home.
        let at_home = |i: usize, hh: &[usize]| hh.len() >= 3 && hh.last() == Some(&i);
        // Desk islands mix households: first members of every household,
        // then second members, and so on.
        let mut workers: Vec<(usize, usize, usize)> = Vec::new(); // (pos, household, person)
        for (h, hh) in households.iter().enumerate() {
            for (pos, &i) in hh.iter().enumerate() {
                if !at_home(i, hh) {
                    workers.push((pos, h, i));
                }
            }
        }
        workers.sort();
        let islands: Vec<Vec<usize>> = workers
            .chunks(ISLAND_SIZE)
            .map(|c| c.iter().map(|w| w.2).collect())
            .collect();
        // Café tables mix islands: one from each island in turn.
        let mut order = Vec::new();
        for k in 0..ISLAND_SIZE {
            for island in &islands {
                if let Some(&i) = island.get(k) {
                    order.push(i);
                }
            }
        }
        let tables: Vec<Vec<usize>> = order.chunks(TABLE_SIZE).map(<[usize]>::to_vec).collect();
        // Workers with an odd number take the bus, in number order.
        let mut bus: Vec<usize> = workers.iter().map(|w| w.2).filter(|i| i % 2 == 1).collect();
        bus.sort_unstable();
        let index = 1.min(n.saturating_sub(1));

        let mut people = Vec::with_capacity(n);
        for (h, hh) in households.iter().enumerate() {
            for (pos, &i) in hh.iter().enumerate() {
                let home = home_seat(h, pos, hh.len());
                let find = |groups: &[Vec<usize>]| {
                    groups.iter().enumerate().find_map(|(g, members)| {
                        members.iter().position(|&m| m == i).map(|k| (g, k))
                    })
                };
                let (role, stays) = match (find(&islands), find(&tables)) {
                    (Some((island, ik)), Some((table, tk))) => {
                        let seat = bus.iter().position(|&b| b == i);
                        let desk = around(grid(50_000.0, island), ik, islands[island].len(), 0.7);
                        let chair = around(grid(70_000.0, table), tk, tables[table].len(), 0.6);
                        let mut stays = vec![(0, home), (min(BREAKFAST_END), alone(i))];
                        if let Some(k) = seat {
                            stays.push((min(BUS_START), bus_seat(k)));
                            stays.push((min(BUS_END), alone(i)));
                        }
                        stays.push((min(OFFICE_START), desk));
                        stays.push((min(OFFICE_END), alone(i)));
                        stays.push((min(CAFE_START), chair));
                        stays.push((min(CAFE_END), alone(i)));
                        if i != index {
                            stays.push((min(AFTERNOON_START), desk));
                        }
                        (
                            Role::Worker {
                                island,
                                table,
                                seat,
                            },
                            stays,
                        )
                    }
                    _ => (Role::AtHome, vec![(0, home)]),
                };
                people.push(Person {
                    name: NAMES[i],
                    household: h,
                    role,
                    stays,
                });
            }
        }
        Script {
            people,
            households,
            islands,
            tables,
            bus,
            index,
        }
    }

    /// Seconds the radio day lasts.
    pub(super) fn seconds(&self) -> u64 {
        min(END_MINUTES)
    }

    /// Person `i`'s path, for a day starting at unix second `t0`.
    pub(super) fn trajectory(&self, i: usize, t0: u64) -> Trajectory {
        let stays = &self.people[i].stays;
        let mut waypoints = Vec::with_capacity(2 * stays.len());
        for (k, &(start, p)) in stays.iter().enumerate() {
            waypoints.push((t0 + start, p));
            // Stay until one second before the next place (moving takes a
            // second: the air samples whole seconds).
            if let Some(&(next, _)) = stays.get(k + 1) {
                waypoints.push((t0 + next - 1, p));
            }
        }
        Trajectory::new(waypoints).unwrap_or_default()
    }

    /// Time every person spends close to and within `range_m` of the index
    /// person, sampled like the air: at `t0 + 1 ..= t0 + seconds()`.
    pub(super) fn truth(&self, t0: u64, range_m: f64) -> Vec<Truth> {
        let paths: Vec<Trajectory> = (0..self.people.len())
            .map(|i| self.trajectory(i, t0))
            .collect();
        let mut out = vec![Truth::default(); self.people.len()];
        for s in 1..=self.seconds() {
            let t = (t0 + s) as f64;
            let p = paths[self.index].at(t);
            for (i, path) in paths.iter().enumerate() {
                if i == self.index {
                    continue;
                }
                let d = p.distance(&path.at(t));
                if d <= CLOSE_M {
                    out[i].close_seconds += 1;
                }
                if d <= range_m {
                    out[i].in_range_seconds += 1;
                }
            }
        }
        out
    }

    /// The scenes in which person `i` was in one group with the index
    /// person (the same household, bus, desk island or café table).
    pub(super) fn shared_places(&self, i: usize) -> Vec<&'static str> {
        let (a, b) = (&self.people[self.index], &self.people[i]);
        let mut out = Vec::new();
        if a.household == b.household {
            out.push("home");
        }
        if let (
            Role::Worker {
                island: ia,
                table: ta,
                seat: sa,
            },
            Role::Worker {
                island: ib,
                table: tb,
                seat: sb,
            },
        ) = (a.role, b.role)
        {
            if sa.is_some() && sb.is_some() {
                out.push("bus");
            }
            if ia == ib {
                out.push("office");
            }
            if ta == tb {
                out.push("café");
            }
        }
        out
    }

    /// Names of a group, separated by spaces.
    pub(super) fn names(&self, group: &[usize]) -> String {
        group
            .iter()
            .map(|&i| self.people[i].name)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Names of a group as a phrase: "Ana", "Ana and Bea", "Ana, Bea and Cem".
    fn phrase(&self, group: &[usize]) -> String {
        let names: Vec<&str> = group.iter().map(|&i| self.people[i].name).collect();
        match names.split_last() {
            None => String::new(),
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// The day's scenes for the story: (clock time, text).
    pub(super) fn scenes(&self) -> Vec<(String, String)> {
        let at = |m: u64| {
            let total = DAY_START_HOUR * 60 + m;
            format!("{:02}:{:02}", total / 60, total % 60)
        };
        let groups = |gs: &[Vec<usize>]| {
            gs.iter()
                .map(|g| format!("[{}]", self.names(g)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let index = self.people[self.index].name;
        let mut out = vec![(
            at(0),
            format!(
                "Breakfast at home, {} households: {}",
                self.households.len(),
                groups(&self.households)
            ),
        )];
        let home: Vec<usize> = (0..self.people.len())
            .filter(|&i| self.people[i].role == Role::AtHome)
            .collect();
        if !home.is_empty() {
            out.push((
                at(BREAKFAST_END),
                format!(
                    "{} {} at home all day",
                    self.phrase(&home),
                    if home.len() == 1 { "stays" } else { "stay" }
                ),
            ));
        }
        if !self.bus.is_empty() {
            out.push((
                at(BUS_START),
                format!(
                    "Bus ride, {} minutes, seats 0.8 m across and 1 m apart: {}",
                    BUS_END - BUS_START,
                    self.phrase(&self.bus)
                ),
            ));
        }
        out.push((
            at(OFFICE_START),
            format!("Office, desk islands 25 m apart: {}", groups(&self.islands)),
        ));
        out.push((
            at(CAFE_START),
            format!(
                "Lunch at the café, tables of three: {}",
                groups(&self.tables)
            ),
        ));
        out.push((
            at(CAFE_END),
            format!("{index} feels feverish and goes alone to a test centre"),
        ));
        out.push((
            at(AFTERNOON_START),
            "The others are back at their desks".into(),
        ));
        out.push((at(END_MINUTES), format!("{index}'s test is positive")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtrace_node::radio::model::PathLossModel;

    #[test]
    fn names_are_distinct() {
        let mut n = NAMES.to_vec();
        n.sort_unstable();
        n.dedup();
        assert_eq!(n.len(), NAMES.len());
    }

    /// Whatever the number of people, nobody is within radio range of the
    /// index person for 15 minutes or more without being a clear close
    /// contact (25 minutes within 2 m): the radio noise cannot produce a
    /// false alert, and true contacts are not borderline.
    #[test]
    fn contacts_are_clear_cut_for_every_size() {
        let range = PathLossModel::default().max_range_m;
        for n in 3..=NAMES.len() {
            let s = Script::new(n);
            assert_eq!(s.people.len(), n);
            let truth = s.truth(1_800_000_000, range);
            let mut contacts = 0;
            for (i, t) in truth.iter().enumerate() {
                if i == s.index {
                    continue;
                }
                assert!(
                    t.in_range_seconds < 15 * 60 || t.close_seconds >= 25 * 60,
                    "n={n}: {} {t:?}",
                    s.people[i].name
                );
                contacts += usize::from(t.is_contact());
            }
            assert!(contacts >= 1, "n={n}");
            assert!(
                n < 12 || contacts < n - 1,
                "n={n}: someone is not a contact"
            );
        }
    }

    #[test]
    fn the_default_day() {
        let s = Script::new(12);
        assert_eq!(s.people[s.index].name, "Bea");
        let truth = s.truth(1_800_000_000, 20.0);
        let contacts: Vec<&str> = truth
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_contact())
            .map(|(i, _)| s.people[i].name)
            .collect();
        assert_eq!(
            contacts,
            ["Ana", "Cem", "Dan", "Eva", "Gus", "Hal", "Kim"],
            "{:?}",
            s.scenes()
        );
    }
}
