{#- One row per product: the latest name, category, brand and price seen (from the latest
    sighting that carries a name), first and last seen. Incremental: products seen in the new
    loads are recombined with their existing row. -#}
{{
    config(
        materialized='incremental',
        unique_key='product_id',
        incremental_strategy=keyed_incremental_strategy(),
    )
}}
{{ config(post_hook="{{ record_incremental_run() }}") }}
-- depends_on: {{ ref('int_raw_loads') }}

{{ refuse_full_build_of_trimmed_raw() }}
with

sightings as (
    select
        product_id,
        product_name,
        product_category,
        product_brand,
        product_price,
        event_at,
        loaded_at
    from {{ ref('int_product_sightings') }}
    where
        true
        {% if var('exclude_bots') -%}
            and not is_bot
        {%- endif %}
        and {{ when_incremental(in_unprocessed_loads()) }}
),

sighting_spans as (
    select
        product_id,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        max(loaded_at) as last_loaded_at
    from sightings
    group by 1
),

ranked_sightings as (
    select
        sightings.*,
        row_number() over (
            partition by sightings.product_id
            order by
                case when sightings.product_name is not null then 0 else 1 end,
                sightings.event_at desc,
                sightings.loaded_at desc
        ) as recency_rank
    from sightings
),

new_attributes as (
    select
        ranked_sightings.product_id,
        ranked_sightings.product_name,
        ranked_sightings.product_category,
        ranked_sightings.product_brand,
        ranked_sightings.product_price,
        ranked_sightings.event_at as attributes_seen_at,
        sighting_spans.first_seen_at,
        sighting_spans.last_seen_at,
        sighting_spans.last_loaded_at
    from ranked_sightings
    inner join sighting_spans
        on ranked_sightings.product_id = sighting_spans.product_id
    where ranked_sightings.recency_rank = 1
),

{% if is_incremental() %}
    existing_products as (
        select
            already_loaded.product_id,
            already_loaded.product_name,
            already_loaded.product_category,
            already_loaded.product_brand,
            already_loaded.product_price,
            already_loaded.attributes_seen_at,
            already_loaded.attributes_changed_at,
            already_loaded.first_seen_at,
            already_loaded.last_seen_at,
            already_loaded.last_loaded_at
        from {{ this }} as already_loaded
        inner join new_attributes
            on already_loaded.product_id = new_attributes.product_id
    ),

    combined as (
        select
            new_attributes.product_id,
            case
                when
                    existing_products.product_id is null
                    or (new_attributes.product_name is not null and existing_products.product_name is null)
                    or (
                        (new_attributes.product_name is null) = (existing_products.product_name is null)
                        and new_attributes.attributes_seen_at >= existing_products.attributes_seen_at
                    )
                    then 'new'
                else 'already_loaded'
            end as attributes_from,
            new_attributes.product_name as new_product_name,
            new_attributes.product_category as new_product_category,
            new_attributes.product_brand as new_product_brand,
            new_attributes.product_price as new_product_price,
            new_attributes.attributes_seen_at as new_attributes_seen_at,
            existing_products.product_name as old_product_name,
            existing_products.product_category as old_product_category,
            existing_products.product_brand as old_product_brand,
            existing_products.product_price as old_product_price,
            existing_products.attributes_seen_at as old_attributes_seen_at,
            existing_products.attributes_changed_at as old_attributes_changed_at,
            existing_products.product_id is null as is_new_product,
            least(new_attributes.first_seen_at, existing_products.first_seen_at) as first_seen_at,
            greatest(new_attributes.last_seen_at, existing_products.last_seen_at) as last_seen_at,
            greatest(new_attributes.last_loaded_at, existing_products.last_loaded_at) as last_loaded_at
        from new_attributes
        left join existing_products
            on new_attributes.product_id = existing_products.product_id
    ),

    final as (
        select
            combined.product_id,
            case
                when combined.attributes_from = 'new' then combined.new_product_name
                else combined.old_product_name
            end as product_name,
            case
                when combined.attributes_from = 'new' then combined.new_product_category
                else combined.old_product_category
            end as product_category,
            case
                when combined.attributes_from = 'new' then combined.new_product_brand
                else combined.old_product_brand
            end as product_brand,
            case
                when combined.attributes_from = 'new' then combined.new_product_price
                else combined.old_product_price
            end as product_price,
            combined.first_seen_at,
            combined.last_seen_at,
            case
                when combined.attributes_from = 'new' then combined.new_attributes_seen_at
                else combined.old_attributes_seen_at
            end as attributes_seen_at,
            case
                when
                    combined.is_new_product
                    or (
                        combined.attributes_from = 'new'
                        and (
                            combined.new_product_name is distinct from combined.old_product_name
                            or combined.new_product_category is distinct from combined.old_product_category
                            or combined.new_product_brand is distinct from combined.old_product_brand
                            or combined.new_product_price is distinct from combined.old_product_price
                        )
                    )
                    then {{ run_timestamp() }}
                else combined.old_attributes_changed_at
            end as attributes_changed_at,
            combined.last_loaded_at,
            {{ run_timestamp() }} as dbt_updated_at
        from combined
    )
{% else %}
    final as (
        select
            new_attributes.product_id,
            new_attributes.product_name,
            new_attributes.product_category,
            new_attributes.product_brand,
            new_attributes.product_price,
            new_attributes.first_seen_at,
            new_attributes.last_seen_at,
            new_attributes.attributes_seen_at,
            {{ run_timestamp() }} as attributes_changed_at,
            new_attributes.last_loaded_at,
            {{ run_timestamp() }} as dbt_updated_at
        from new_attributes
    )
{% endif %}

select * from final
