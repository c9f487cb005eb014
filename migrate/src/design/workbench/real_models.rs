//! The import on data models AWS publishes (see
//! `migrate/tests/fixtures/workbench/README.md`): one test per shape of
//! model the importer must read, each on a real model.

use std::collections::BTreeMap;

use singletable::template::Segment;
use singletable::{AttrType, TableDesign};

use super::*;

macro_rules! fixture {
    ($file:literal) => {
        Model::from_json(include_str!(concat!("../../../tests/fixtures/workbench/", $file))).expect($file)
    };
}

/// Every published model, by file name.
fn published() -> Vec<(&'static str, Model)> {
    vec![
        ("AnOnlineShop_14.json", fixture!("AnOnlineShop_14.json")),
        ("AnOnlineShop_facets.json", fixture!("AnOnlineShop_facets.json")),
        ("ChatSystemSchema.json", fixture!("ChatSystemSchema.json")),
        ("ComplaintManagementSchema.json", fixture!("ComplaintManagementSchema.json")),
        ("ConnectedVehiclesSchema.json", fixture!("ConnectedVehiclesSchema.json")),
        ("DeviceStateLog_1.json", fixture!("DeviceStateLog_1.json")),
        ("DeviceStateLog_7.json", fixture!("DeviceStateLog_7.json")),
        ("GamePlayerProfilesSchema.json", fixture!("GamePlayerProfilesSchema.json")),
        ("RecurringPaymentsSchema.json", fixture!("RecurringPaymentsSchema.json")),
        ("SessionManagementSchema.json", fixture!("SessionManagementSchema.json")),
        ("SocialNetworkSchema.json", fixture!("SocialNetworkSchema.json")),
    ]
}

/// Entity -> (pk template, sk template).
fn keys(design: &TableDesign) -> BTreeMap<String, (String, String)> {
    design
        .entities
        .iter()
        .map(|e| (e.entity.to_string(), (e.pk.template.source.to_string(), e.sk.template.source.to_string())))
        .collect()
}

fn index(design: &TableDesign, entity: &str, name: &str) -> (String, Option<String>) {
    let i = design.entity(entity).unwrap().index(name).unwrap_or_else(|| panic!("{entity} has no index {name}"));
    (i.pk.template.source.to_string(), i.sk.as_ref().map(|k| k.template.source.to_string()))
}

fn attr<'a>(design: &'a TableDesign, entity: &str, name: &str) -> Option<&'a singletable::AttributeDesign> {
    design.entity(entity).unwrap().attributes.iter().find(|a| a.name == name)
}

fn has(warnings: &[String], text: &str) -> bool {
    warnings.iter().any(|w| w.contains(text))
}

fn pairs(list: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String)> {
    list.iter().map(|(e, pk, sk)| (e.to_string(), (pk.to_string(), sk.to_string()))).collect()
}

#[test]
fn aliases_without_braces_are_read_as_fields_checked_against_the_sample_keys() {
    // Aliases `playerID`, `ITEMS#ItemID`, `#METEADATA#playerID` (sic);
    // entity types `Item` for facet `Items`; one sample key typed twice.
    let Import { design, warnings } = import(&fixture!("GamePlayerProfilesSchema.json"), None).unwrap();
    assert_eq!(
        keys(&design),
        pairs(&[
            ("Metadata", "{playerID}", "#METADATA#{playerID}"),
            ("Friends", "{playerID}", "FRIENDS#{playerID}"),
            ("Item", "{playerID}", "ITEMS#{ItemID}"),
            ("Equipment", "{playerID}", "EQUIPMENTS#{EquipID}"),
            ("Task", "{playerID}", "TASK#{TaskID}"),
            ("Activity", "{playerID}", "ACTIVITY#{ActivityID}"),
        ])
    );
    assert_eq!(design.entities[0].entity_attr, "Type");
    // The ids live only in the keys: the design stores them as strings.
    let item_id = attr(&design, "Item", "ItemID").unwrap();
    assert_eq!((item_id.ty, item_id.optional), (AttrType::S, false));
    assert!(has(&warnings, "facet `Items` (entity `Item`): `playerID`, `ItemID` are only inside the sample items' keys"), "{warnings:#?}");
    assert!(has(&warnings, "facet `Items`: its items store `Item` in `Type`: the entity is named `Item`"), "{warnings:#?}");
    assert!(has(&warnings, "`SK` alias `#METEADATA#playerID` read as the template `#METADATA#{playerID}`"), "{warnings:#?}");
    assert!(
        has(&warnings, "sample item(s) with keys `player001` / `EQUIPMENTS#001EQUIPMENTS#002` do not have the form of the key aliases: left out"),
        "{warnings:#?}"
    );
    // `{"M": {"M": {...}}}` is not typed JSON: the attribute is dropped from
    // the samples, but stays an attribute of its declared type.
    assert!(has(&warnings, "facet `Items`: `ItemAttributes` is not typed DynamoDB JSON in sample item(s) 1, 2, 3"), "{warnings:#?}");
    let attrs = attr(&design, "Item", "ItemAttributes").unwrap();
    assert_eq!((attrs.ty, attrs.optional), (AttrType::M, false));
}

#[test]
fn an_alias_may_leave_out_the_labels_its_fields_follow() {
    // `AccountId` for `ACC#123`, `SubId#SKU` for `SUB#123#SKU#999`; GSIs
    // keyed on plain attributes; a sample whose key contradicts its item.
    let Import { design, warnings } = import(&fixture!("RecurringPaymentsSchema.json"), None).unwrap();
    assert_eq!(
        keys(&design),
        pairs(&[
            ("Subscription", "ACC#{AccountId}", "SUB#{SubId}#SKU#{SKU}"),
            ("Receipts", "ACC#{AccountId}", "REC#{ProcessedDate}#SKU#{SKU}"),
        ])
    );
    assert_eq!(index(&design, "Subscription", "GSI-1"), ("{NextReminderDate}".into(), Some("{LastReminderDate}".into())));
    assert_eq!(index(&design, "Subscription", "GSI-2"), ("{NextPaymentDate}".into(), Some("{LastPaymentDate}".into())));
    // The index keys are the attributes themselves, not payload copies.
    assert!(attr(&design, "Subscription", "NextReminderDate").is_none());
    assert!(attr(&design, "Subscription", "SubId").is_some() && attr(&design, "Subscription", "SKU").is_some());
    assert!(
        has(&warnings, "the sample items disagree with their keys about `ProcessedDate`: `2023-05-28T14:15:39.247Z` in the item whose key is `REC#12023-05-28T14:15:39.24#SKU#999`"),
        "{warnings:#?}"
    );
    assert!(has(&warnings, "the entity-type attribute is `_et`"), "{warnings:#?}");
}

#[test]
fn pk_and_sk_aliases_leave_the_templates_to_the_sample_keys() {
    // Format 1.0 (no `AWSService`), aliases `PK`/`SK` on every facet, ids
    // only inside the keys (`c#12345`), hyphenated GSI attributes.
    let model = fixture!("AnOnlineShop_facets.json");
    assert_eq!((model.model_metadata.version.as_str(), model.model_metadata.aws_service.as_str()), ("1.0", ""));
    let Import { design, warnings } = import(&model, None).unwrap();
    assert_eq!(
        keys(&design),
        pairs(&[
            ("customer", "c#{c_id}", "c#{c_id}"),
            ("product", "p#{p_id}", "p#{p_id}"),
            ("warehouse", "w#{w_id}", "w#{w_id}"),
            ("warehouseItem", "p#{p_id}", "w#{w_id}"),
            ("orderItem", "o#{o_id}", "p#{p_id}"),
            ("shipment", "o#{o_id}", "sh#{sh_id}"),
            ("shipmentItem", "o#{o_id}", "shp#{shp_id}"),
            ("invoice", "o#{o_id}", "i#{i_id}"),
            ("payment", "o#{o_id}", "pmn#{pmn_id}"),
        ])
    );
    assert_eq!(design.entities[0].entity_attr, "EntityType");
    // `c#12345` is another id than `o#12345`: parts after different labels
    // are different fields, even with the same digits.
    assert_eq!(index(&design, "orderItem", "GSI2").0, "c#{c_id}");
    assert_eq!(index(&design, "shipmentItem", "GSI1"), ("sh#{sh_id}".into(), Some("p#{p_id}".into())));
    // A GSI sort key holding a bare date is its own field; the hyphenated
    // attribute keeps its name in the template, its Rust name is an identifier.
    assert_eq!(index(&design, "orderItem", "GSI1").1.as_deref(), Some("{GSI1-SK}"));
    let gsi1 = design.entity("orderItem").unwrap().index("GSI1").unwrap();
    let Segment::Field(f) = &gsi1.sk.as_ref().unwrap().template.segments[0] else { panic!("a field") };
    assert_eq!((f.attr.as_ref(), f.field.as_ref()), ("GSI1-SK", "GSI1_SK"));
    assert!(has(&warnings, "facet `customer`: `c_id` is only inside the sample items' keys"), "{warnings:#?}");
}

#[test]
fn items_without_facets_are_split_by_their_entity_type_attribute() {
    let Import { design, warnings } = import(&fixture!("AnOnlineShop_14.json"), None).unwrap();
    let names: Vec<&str> = design.entities.iter().map(|e| e.entity.as_ref()).collect();
    assert_eq!(names, ["customer", "product", "warehouse", "warehouseItem", "orderItem", "order", "invoice", "shipment", "shipmentItem"]);
    assert!(design.entities.iter().all(|e| e.entity_attr == "EntityType"));
    assert_eq!(keys(&design)["order"], ("o#{o_id}".into(), "c#{c_id}".into()));
    assert_eq!(index(&design, "warehouseItem", "GSI2"), ("w#{w_id}".into(), Some("p#{p_id}".into())));
    assert_eq!(index(&design, "shipment", "GSI2"), ("w#{w_id}".into(), Some("sh#{sh_id}".into())));
    assert!(has(&warnings, "entity `warehouseItem`: some sample items lack `GSI2-PK`"), "{warnings:#?}");
}

#[test]
fn items_without_facets_or_types_are_split_by_their_key_labels() {
    let Import { design, warnings } = import(&fixture!("SocialNetworkSchema.json"), None).unwrap();
    assert_eq!(
        keys(&design),
        pairs(&[
            ("UInfo", "u#{u_id}", "\"info\""),
            ("UCount", "u#{u_id}", "\"count\""),
            ("UFollower", "u#{u_id}#follower", "u#{u_id_2}"),
            ("UFollowing", "u#{u_id}#following", "u#{u_id_2}"),
            ("UPost", "u#{u_id}#post", "p#{p_id}"),
            ("UTimeline", "u#{u_id}#timeline", "p#{p_id}#u#{u_id_2}"),
            ("PLikelist", "p#{p_id}#likelist", "u#{u_id}"),
            ("PLikecount", "p#{p_id}#likecount", "\"count\""),
        ])
    );
    assert_eq!(design.entities[0].entity_attr, "_et");
    assert!(has(&warnings, "entities are told apart by their key labels, and store their name in `_et`"), "{warnings:#?}");

    // `User:UserA` / `Room:Music`; an index on two plain attributes.
    let chat = import(&fixture!("ChatSystemSchema.json"), None).unwrap().design;
    assert_eq!(keys(&chat), pairs(&[("User", "User:{user_id}", "{SK}"), ("Room", "Room:{room_id}", "meta")]));
    assert_eq!(index(&chat, "User", "RoomID_Comment_IDX"), ("{RoomID}".into(), Some("{CreatedAt}".into())));

    // Items whose key starts with a value: told apart by their sort keys.
    // The comments hold the complaint id only in their key; the metadata
    // items show it is `complaint_id`.
    let Import { design: complaints, warnings } = import(&fixture!("ComplaintManagementSchema.json"), None).unwrap();
    assert_eq!(
        keys(&complaints),
        pairs(&[("Comm", "{complaint_id}", "comm#{comm_date}#{comm_id}"), ("Metadata", "{complaint_id}", "metadata")])
    );
    assert_eq!(index(&complaints, "Metadata", "Escalations_GSI"), ("{escalated_to}".into(), Some("{escalation_time}".into())));
    assert!(complaints.entity("Metadata").unwrap().index("Escalations_GSI").unwrap().is_sparse());
    assert!(has(&warnings, "entity `Comm`: `complaint_id` is only inside the sample items' keys"), "{warnings:#?}");

    // An inverted index (keyed on the table's sort and partition keys).
    let sessions = import(&fixture!("SessionManagementSchema.json"), None).unwrap().design;
    assert_eq!(
        keys(&sessions),
        pairs(&[("SuuidChild", "suuid#{suuid_id}", "child#suuid#{suuid_id_2}"), ("SuuidC", "suuid#{suuid_id}", "c#{c_id}")])
    );
    assert_eq!(index(&sessions, "SuuidC", "GSI1_inverse"), ("c#{c_id}".into(), Some("suuid#{suuid_id}".into())));
}

#[test]
fn keys_named_for_their_content_hold_that_attribute() {
    // Format 1.0, no facets, keys `DeviceID`/`Date`: the sort key is the
    // date itself, the GSIs are keyed on plain attributes.
    let one = import(&fixture!("DeviceStateLog_1.json"), None).unwrap().design;
    assert_eq!(keys(&one), pairs(&[("DeviceStateLog", "d#{d_id}", "{Date}")]));
    let Import { design, warnings } = import(&fixture!("DeviceStateLog_7.json"), None).unwrap();
    assert_eq!(keys(&design), pairs(&[("DeviceStateLog", "d#{d_id}", "{State}#{Date}")]));
    assert_eq!(index(&design, "DeviceStateLog", "GSI1"), ("{Operator}".into(), Some("{Date}".into())));
    // `EscalatedTo` is `Sara` in one sample: a value, not the constant `Sara`.
    assert_eq!(index(&design, "DeviceStateLog", "GSI2"), ("{EscalatedTo}".into(), Some("{State}#{Date}".into())));
    assert!(design.entity("DeviceStateLog").unwrap().index("GSI2").unwrap().is_sparse());
    assert!(!has(&warnings, "index left out"), "{warnings:#?}");
}

#[test]
fn a_malformed_sample_value_drops_that_attribute_not_the_item() {
    // Plain JSON inside `M` values; facets `PK`/`SK` over several kinds
    // of items each (vehicle metadata, features, users ...).
    let Import { design, warnings } = import(&fixture!("ConnectedVehiclesSchema.json"), None).unwrap();
    assert!(
        has(&warnings, "facet `Vehicle`: `cameras` is not typed DynamoDB JSON in sample item(s) 3, 6 (The key 'front_camera_center' is not a known DynamoDB prefix"),
        "{warnings:#?}"
    );
    assert!(!has(&warnings, "skipped"), "{warnings:#?}");
    // Item 3 (`FEATURE#CAMERAS`) and 6 still count: their keys shape the entities.
    assert_eq!(
        keys(&design),
        pairs(&[
            ("VehicleMeta", "VIN#{vehicle_id}", "#META#"),
            ("VehicleFeature", "VIN#{vehicle_id}", "FEATURE#{feature_id}"),
            ("VehicleId", "VIN#{vehicle_id}", "ID#{user_name}"),
            ("VehicleF", "VIN#{vehicle_id}", "F#{user_id}#ACTIVE#CAMERAS#<sub_feature>\t"),
            ("UserMeta", "ID#{user_name}", "#META#"),
            ("UserPreferences", "ID#{user_name}", "PREFERENCES#{preferences_id}"),
            ("UserFCameras", "ID#{user_name}", "F#ACTIVE#CAMERAS#<sub_feature>"),
            ("UserFSeats", "ID#{user_name}", "F#EXPIRED#SEATS#<sub_feature>"),
            ("UserVin", "ID#{user_name}", "VIN#{vehicle_id}"),
        ])
    );
    // The dropped values still made their attributes, present in those items.
    let cameras = attr(&design, "VehicleF", "cameras").unwrap();
    assert_eq!((cameras.ty, cameras.optional), (AttrType::M, false));
}

#[test]
fn a_model_that_cannot_work_is_an_error() {
    let err = import(&fixture!("GamePlayerProfiles_constant_keys.json"), None).unwrap_err().to_string();
    assert!(
        err.contains("entities `Metadata` (`PLAYER`, `PROFILE`) and `Friends` (`PLAYER`, `PROFILE`) have the same constant keys"),
        "{err}"
    );
    // Aliases `PK`/`SK` and no sample items: nothing says what the keys hold.
    let mut bare = fixture!("AnOnlineShop_facets.json");
    for f in &mut bare.data_model[0].table_facets {
        f.table_data.clear();
    }
    let err = import(&bare, None).unwrap_err().to_string();
    assert!(err.contains("entity `customer`: no sample item shows its keys and its alias names no template (`PK`)"), "{err}");
}

#[test]
fn every_published_model_makes_a_design_that_exports_and_reads_back() {
    // The imported designs work: the evaluator renders sample items for
    // every entity, and the exported model imports to the same keys.
    for (file, model) in published() {
        let first = import(&model, None).unwrap_or_else(|e| panic!("{file}: {e}")).design;
        let opts = ExportOptions { samples: 3, author: "tests".into(), date: workbench_date(0), model_name: None };
        let exported = export(&first, &opts).unwrap_or_else(|e| panic!("{file}: export: {e}")).model;
        let again = import(&Model::from_json(&exported.to_json()).unwrap(), None).unwrap_or_else(|e| panic!("{file}: re-import: {e}"));
        assert_eq!(keys(&again.design), keys(&first), "{file}");
        for (a, b) in again.design.entities.iter().zip(&first.entities) {
            assert_eq!(a.indexes, b.indexes, "{file}: {}", a.entity);
        }
    }
}
