"""The sample's INDUSTRY vocabulary: codes and free-text labels, near-duplicates, truncations.

Two vocabularies mixed as in the real files (upper-snake codes and free text), values that differ
only in case or punctuation, labels truncated at 40 characters, and a long tail of rare values.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

_CODES = (
    "COMPUTER_SOFTWARE", "MARKETING_AND_ADVERTISING", "HIGHER_EDUCATION", "REAL_ESTATE", "INTERNET",
    "INFORMATION_TECHNOLOGY_AND_SERVICES", "FINANCIAL_SERVICES", "HOSPITAL_HEALTH_CARE",
    "CONSTRUCTION", "RETAIL", "NON_PROFIT_ORGANIZATION_MANAGEMENT", "MANAGEMENT_CONSULTING",
    "EDUCATION_MANAGEMENT", "STAFFING_AND_RECRUITING", "INSURANCE", "ACCOUNTING", "LEGAL_SERVICES",
    "AUTOMOTIVE", "HOSPITALITY", "FOOD_AND_BEVERAGES", "E_LEARNING", "TELECOMMUNICATIONS",
    "MACHINERY", "BANKING", "MEDICAL_DEVICES", "ENVIRONMENTAL_SERVICES",
    "RENEWABLES_AND_ENVIRONMENT", "LOGISTICS_AND_SUPPLY_CHAIN", "WHOLESALE", "CONSUMER_GOODS",
    "APPAREL_AND_FASHION", "ARCHITECTURE_AND_PLANNING", "BROADCAST_MEDIA", "DESIGN",
    "EVENTS_SERVICES", "FITNESS", "GOVERNMENT_ADMINISTRATION", "HUMAN_RESOURCES",
    "INVESTMENT_MANAGEMENT", "LEISURE_TRAVEL_AND_TOURISM", "MECHANICAL_OR_INDUSTRIAL_ENGINEERING",
    "ONLINE_MEDIA", "PUBLIC_RELATIONS_AND_COMMUNICATIONS", "RESEARCH",
    "SECURITY_AND_INVESTIGATIONS", "SPORTS", "TRANSPORTATION_TRUCKING_RAILROAD",
    "VENTURE_CAPITAL_AND_PRIVATE_EQUITY", "WRITING_AND_EDITING",
)  # fmt: skip
_LABELS = (
    "Technology - Software", "Non-Profit/Educational Institution", "real estate", "Other",
    "Marketing Agency", "Consulting", "Financial Services", "Healthcare", "Manufacturing",
    "E-commerce", "Retail", "Education", "Professional Services", "Travel & Hospitality",
    "Media & Entertainment", "Real Estate", "Software", "SaaS", "Agency", "Government",
    "Telecommunications", "Construction", "Insurance", "Legal", "Automotive", "Energy",
    "Transportation/Logistics", "Food & Beverage", "Fitness", "Arts", "Technology - Hardware",
    "Technology - Services", "Business Services", "Health, Wellness and Fitness",
    "Banking, Finance", "Recruiting", "Hospitality", "Non-Profit", "Church/Religious Organization",
    "Photography",
)  # fmt: skip
_LONG_LABELS = (
    "Non-Profit Organization Management and Fundraising Services",
    "Information Technology and Services - Managed Service Providers",
    "Marketing and Advertising - Digital Agency Partner Programme",
    "Computer Software - Customer Relationship Management Tools",
    "Real Estate Development, Brokerage and Property Management",
    "Higher Education - Universities, Colleges and Vocational Schools",
    "Health, Wellness and Fitness - Gyms, Studios and Personal Training",
    "Professional Training and Coaching for Small Business Owners",
    "Financial Services - Wealth Management and Financial Planning",
    "Environmental Services and Renewable Energy Consultancies",
)
_RARE = (
    "Dental", "Veterinary", "Brewery", "Yoga Studio", "Solar", "Plumbing", "Landscaping",
    "Wedding Planning", "Pet Care", "Crypto", "Blockchain", "Drones", "Esports", "Aquaculture",
    "Translation Services", "Printing", "Signage", "Coworking", "Chiropractic", "Tutoring",
    "Funeral Services", "Bakery", "Winery", "Interior Design", "HVAC", "Roofing", "Pest Control",
    "Moving & Storage", "Car Wash", "Mining", "Shipbuilding", "Tobacco", "Dairy", "Museums",
)  # fmt: skip


def industry_vocabulary() -> tuple[str, ...]:
    """Return the INDUSTRY values, commonest first: codes, labels, near-duplicates, truncations."""
    head = [v for pair in zip(_CODES, _LABELS, strict=False) for v in pair]
    head += _CODES[len(_LABELS) :]
    dups = [label.lower() for label in _LABELS[:25]] + [label.upper() for label in _LABELS[25:]]
    dups += [label.replace(" - ", "-").replace("&", "and") for label in _LABELS]
    dups += [code.replace("_", " ").title() for code in _CODES]
    dups += [code.lower() for code in _CODES[:15]]
    truncated = [label[:40] for label in _LONG_LABELS]
    values = dict.fromkeys(head + truncated[:5] + dups + truncated[5:] + list(_RARE))
    return tuple(values)


def industry_effect(vocab: tuple[str, ...]) -> F64:
    """Return each industry's shift of the conversion log-odds (software/marketing convert more)."""

    def effect(value: str) -> float:
        low = value.lower()
        if any(k in low for k in ("software", "marketing", "internet", "saas", "agency")):
            return 0.7
        if any(k in low for k in ("non-profit", "non_profit", "education", "church", "government")):
            return -0.6
        return 0.0

    return np.array([effect(v) for v in vocab])
