<?xml version="1.0" encoding="UTF-8"?>
<!--
  Opter invoice XML (worker/documents/opterxml.py) to Finvoice 3.0, valid against Finvoice3.0.xsd.

  Conventions
  - Elements follow the schema's sequences in order; optional ones are written
    only when the invoice has a value for them.
  - Amounts have a decimal comma and two decimals ("1234,50", "-12,00"); credit
    notes carry the negative amounts of the invoice they come from. Quantities,
    unit prices and VAT rates have the decimals they need ("1,5", "0,385", "25,5").
  - Dates are CCYYMMDD with Format="CCYYMMDD".
  - Texts are cut to the schema's maximum lengths. Free texts that the schema lets
    repeat (InvoiceFreeText, RowFreeText; PaymentTermsFreeText twice) are split
    into several elements at spaces instead, so that nothing is lost.
  - The encoding is not set here: the caller serializes the result in the
    encoding of the export (UTF-8 or ISO-8859-15).

  Mapping decisions
  - Dimensions: RowAccountDimensionText holds the dimension values in Opter's
    order, separated by ";" (e.g. "KP101;ABC-102"): accounting reads the codes by
    dimension level. Only whole values that fit the 35 characters are written.
    Each dimension is also written as RowDefinitionDetails (name as the header,
    value as the value), so that no value or name is lost.
  - Account: RowNormalProposedAccountIdentifier takes at most 4 characters; a
    longer account number is written to RowProposedAccountText instead of being cut.
  - Waybill: RowDeliveryDetails/RowWaybillIdentifier; the row's delivery date is
    RowDeliveryDate.
  - Reference: EpiRemittanceInfoIdentifier with IdentificationSchemeName="ISO" for
    an RF creditor reference, "SPY" for a Finnish reference number.
  - Buyer's reference: BuyerReferenceIdentifier. Customer number: BuyerCode.
    Customer language: InvoiceRecipientLanguageCode.
  - Type: INV01 / 380 / "LASKU" for an invoice, INV02 / 381 / "HYVITYSLASKU" for a
    credit note, which also names the credited invoice (OriginalInvoiceNumber).
  - Delivery period: DeliveryDetails/DeliveryPeriodDetails.
  - Seller's contact: a phone number is cut to 35 characters like a text; an
    e-mail address longer than the 70 allowed is left out (a cut one is wrong).
  - MessageTransmissionDetails is left out: it routes the message itself and needs
    the seller's own e-invoice address and intermediator; Heeros, which sends the
    invoice on, addresses it.
  - The buyer's e-invoice address and operator (Customer/EinvoiceAddress and
    EinvoiceOperator, both or neither) are InvoiceRecipientDetails
    (InvoiceRecipientAddress, InvoiceRecipientIntermediatorAddress), where the
    schema has it, in SellerInformationDetails: Heeros reads them there to forward
    the invoice as an e-invoice (SendToCustomer) and keeps them in its customer register.
  - VAT categories (UNTDID 5305): each row's VatCode is RowVatCode; each line of the
    VAT breakdown (one per rate and category) is VatSpecificationDetails with its
    VatCode, its exemption reason in VatFreeText (at most three pieces of 70
    characters) and, for AE, K, G and O, the matching VATEX code
    (VatExemptionReasonCode: VATEX-EU-AE, -IC, -G, -O). An invoice written before the
    categories existed has none, and none is written.
  - A credit note requests no payment (Finvoice's guidance for credit notes): no
    PaymentTermsDetails and no due date; the payment instruction the schema requires
    names no reference, an instructed amount of 0,00 and the invoice date.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">

  <xsl:output method="xml" indent="no"/>
  <xsl:strip-space elements="*"/>
  <xsl:decimal-format name="fi" decimal-separator="," grouping-separator=" "/>

  <xsl:variable name="currency" select="string(/Invoice/Currency)"/>

  <xsl:template match="/">
    <xsl:apply-templates select="Invoice"/>
  </xsl:template>

  <xsl:template match="/Invoice">
    <Finvoice Version="3.0" xsi:noNamespaceSchemaLocation="Finvoice3.0.xsd">
      <xsl:apply-templates select="Seller"/>
      <SellerInformationDetails>
        <SellerAccountDetails>
          <SellerAccountID IdentificationSchemeName="IBAN">
            <xsl:value-of select="SellerAccount/Iban"/>
          </SellerAccountID>
          <SellerBic IdentificationSchemeName="BIC">
            <xsl:value-of select="SellerAccount/Bic"/>
          </SellerBic>
        </SellerAccountDetails>
        <xsl:if test="string(Customer/EinvoiceAddress) != ''">
          <InvoiceRecipientDetails>
            <InvoiceRecipientAddress><xsl:value-of select="Customer/EinvoiceAddress"/></InvoiceRecipientAddress>
            <InvoiceRecipientIntermediatorAddress><xsl:value-of select="Customer/EinvoiceOperator"/></InvoiceRecipientIntermediatorAddress>
          </InvoiceRecipientDetails>
        </xsl:if>
      </SellerInformationDetails>
      <xsl:apply-templates select="Customer"/>
      <xsl:apply-templates select="DeliveryPeriod[string(Start) != '']"/>
      <xsl:call-template name="invoice-details"/>
      <xsl:apply-templates select="Rows/InvoiceRow"/>
      <xsl:call-template name="epi-details"/>
    </Finvoice>
  </xsl:template>

  <!-- SellerPartyDetails, SellerContactPersonName, SellerCommunicationDetails -->
  <xsl:template match="Seller">
    <SellerPartyDetails>
      <SellerPartyIdentifier><xsl:value-of select="BusinessId"/></SellerPartyIdentifier>
      <SellerOrganisationName><xsl:value-of select="substring(Name, 1, 70)"/></SellerOrganisationName>
      <SellerOrganisationTaxCode><xsl:value-of select="VatNumber"/></SellerOrganisationTaxCode>
      <xsl:if test="string(Address/Street) != ''">
        <SellerPostalAddressDetails>
          <SellerStreetName><xsl:value-of select="substring(Address/Street, 1, 35)"/></SellerStreetName>
          <SellerTownName><xsl:value-of select="substring(Address/City, 1, 35)"/></SellerTownName>
          <SellerPostCodeIdentifier><xsl:value-of select="Address/PostalCode"/></SellerPostCodeIdentifier>
          <CountryCode><xsl:value-of select="Address/CountryCode"/></CountryCode>
        </SellerPostalAddressDetails>
      </xsl:if>
    </SellerPartyDetails>
    <xsl:if test="string(Contact/Name) != ''">
      <SellerContactPersonName><xsl:value-of select="substring(Contact/Name, 1, 70)"/></SellerContactPersonName>
    </xsl:if>
    <!-- A phone number is cut like a text; an e-mail address that does not fit is left out. -->
    <xsl:variable name="phone" select="string(Contact/Phone)"/>
    <xsl:variable name="email" select="string(Contact/Email[string-length() &lt;= 70])"/>
    <xsl:if test="$phone != '' or $email != ''">
      <SellerCommunicationDetails>
        <xsl:if test="$phone != ''">
          <SellerPhoneNumberIdentifier><xsl:value-of select="substring($phone, 1, 35)"/></SellerPhoneNumberIdentifier>
        </xsl:if>
        <xsl:if test="$email != ''">
          <SellerEmailaddressIdentifier><xsl:value-of select="$email"/></SellerEmailaddressIdentifier>
        </xsl:if>
      </SellerCommunicationDetails>
    </xsl:if>
  </xsl:template>

  <!-- InvoiceRecipientLanguageCode, BuyerPartyDetails -->
  <xsl:template match="Customer">
    <xsl:if test="string-length(Language) = 2">
      <InvoiceRecipientLanguageCode><xsl:value-of select="Language"/></InvoiceRecipientLanguageCode>
    </xsl:if>
    <BuyerPartyDetails>
      <xsl:if test="string(BusinessId) != ''">
        <BuyerPartyIdentifier><xsl:value-of select="BusinessId"/></BuyerPartyIdentifier>
      </xsl:if>
      <BuyerOrganisationName><xsl:value-of select="substring(Name, 1, 70)"/></BuyerOrganisationName>
      <xsl:if test="string(VatNumber) != ''">
        <BuyerOrganisationTaxCode><xsl:value-of select="VatNumber"/></BuyerOrganisationTaxCode>
      </xsl:if>
      <xsl:if test="string(CustomerNumber) != ''">
        <BuyerCode><xsl:value-of select="CustomerNumber"/></BuyerCode>
      </xsl:if>
      <xsl:if test="string(Address/Street) != ''">
        <BuyerPostalAddressDetails>
          <BuyerStreetName><xsl:value-of select="substring(Address/Street, 1, 35)"/></BuyerStreetName>
          <BuyerTownName><xsl:value-of select="substring(Address/City, 1, 35)"/></BuyerTownName>
          <BuyerPostCodeIdentifier><xsl:value-of select="Address/PostalCode"/></BuyerPostCodeIdentifier>
          <CountryCode><xsl:value-of select="Address/CountryCode"/></CountryCode>
        </BuyerPostalAddressDetails>
      </xsl:if>
    </BuyerPartyDetails>
  </xsl:template>

  <xsl:template match="DeliveryPeriod">
    <DeliveryDetails>
      <DeliveryPeriodDetails>
        <StartDate Format="CCYYMMDD"><xsl:value-of select="translate(Start, '-', '')"/></StartDate>
        <EndDate Format="CCYYMMDD"><xsl:value-of select="translate(End, '-', '')"/></EndDate>
      </DeliveryPeriodDetails>
    </DeliveryDetails>
  </xsl:template>

  <xsl:template name="invoice-details">
    <xsl:variable name="credit" select="Type = 'CreditNote'"/>
    <InvoiceDetails>
      <xsl:choose>
        <xsl:when test="$credit">
          <InvoiceTypeCode>INV02</InvoiceTypeCode>
          <InvoiceTypeCodeUN>381</InvoiceTypeCodeUN>
          <InvoiceTypeText>HYVITYSLASKU</InvoiceTypeText>
        </xsl:when>
        <xsl:otherwise>
          <InvoiceTypeCode>INV01</InvoiceTypeCode>
          <InvoiceTypeCodeUN>380</InvoiceTypeCodeUN>
          <InvoiceTypeText>LASKU</InvoiceTypeText>
        </xsl:otherwise>
      </xsl:choose>
      <OriginCode>Original</OriginCode>
      <InvoiceNumber><xsl:value-of select="Number"/></InvoiceNumber>
      <InvoiceDate Format="CCYYMMDD"><xsl:value-of select="translate(InvoiceDate, '-', '')"/></InvoiceDate>
      <xsl:if test="$credit and string(CreditedInvoice) != ''">
        <OriginalInvoiceNumber><xsl:value-of select="CreditedInvoice"/></OriginalInvoiceNumber>
      </xsl:if>
      <xsl:if test="string(BuyerReference) != ''">
        <BuyerReferenceIdentifier><xsl:value-of select="substring(BuyerReference, 1, 70)"/></BuyerReferenceIdentifier>
      </xsl:if>
      <InvoiceTotalVatExcludedAmount AmountCurrencyIdentifier="{$currency}">
        <xsl:value-of select="format-number(TotalExclVat, '0,00', 'fi')"/>
      </InvoiceTotalVatExcludedAmount>
      <InvoiceTotalVatAmount AmountCurrencyIdentifier="{$currency}">
        <xsl:value-of select="format-number(VatTotal, '0,00', 'fi')"/>
      </InvoiceTotalVatAmount>
      <InvoiceTotalVatIncludedAmount AmountCurrencyIdentifier="{$currency}">
        <xsl:value-of select="format-number(TotalInclVat, '0,00', 'fi')"/>
      </InvoiceTotalVatIncludedAmount>
      <xsl:for-each select="VatBreakdown/VatLine">
        <VatSpecificationDetails>
          <VatBaseAmount AmountCurrencyIdentifier="{$currency}">
            <xsl:value-of select="format-number(Base, '0,00', 'fi')"/>
          </VatBaseAmount>
          <VatRatePercent><xsl:value-of select="format-number(Rate, '0,###', 'fi')"/></VatRatePercent>
          <xsl:if test="string(VatCode) != ''">
            <VatCode><xsl:value-of select="VatCode"/></VatCode>
          </xsl:if>
          <VatRateAmount AmountCurrencyIdentifier="{$currency}">
            <xsl:value-of select="format-number(Vat, '0,00', 'fi')"/>
          </VatRateAmount>
          <xsl:call-template name="pieces">
            <xsl:with-param name="element">VatFreeText</xsl:with-param>
            <xsl:with-param name="text" select="string(VatExemptionReason)"/>
            <xsl:with-param name="size" select="70"/>
            <xsl:with-param name="count" select="3"/>
          </xsl:call-template>
          <xsl:variable name="vatex">
            <xsl:choose>
              <xsl:when test="VatCode = 'AE'">VATEX-EU-AE</xsl:when>
              <xsl:when test="VatCode = 'K'">VATEX-EU-IC</xsl:when>
              <xsl:when test="VatCode = 'G'">VATEX-EU-G</xsl:when>
              <xsl:when test="VatCode = 'O'">VATEX-EU-O</xsl:when>
            </xsl:choose>
          </xsl:variable>
          <xsl:if test="$vatex != ''">
            <VatExemptionReasonCode><xsl:value-of select="$vatex"/></VatExemptionReasonCode>
          </xsl:if>
        </VatSpecificationDetails>
      </xsl:for-each>
      <xsl:call-template name="pieces">
        <xsl:with-param name="element">InvoiceFreeText</xsl:with-param>
        <xsl:with-param name="text" select="string(FreeText)"/>
        <xsl:with-param name="size" select="512"/>
      </xsl:call-template>
      <xsl:if test="not($credit)">
      <PaymentTermsDetails>
        <xsl:call-template name="pieces">
          <xsl:with-param name="element">PaymentTermsFreeText</xsl:with-param>
          <xsl:with-param name="text" select="string(PaymentTerms)"/>
          <xsl:with-param name="size" select="70"/>
          <xsl:with-param name="count" select="2"/>
        </xsl:call-template>
        <InvoiceDueDate Format="CCYYMMDD"><xsl:value-of select="translate(DueDate, '-', '')"/></InvoiceDueDate>
      </PaymentTermsDetails>
      </xsl:if>
    </InvoiceDetails>
  </xsl:template>

  <xsl:template match="InvoiceRow">
    <InvoiceRow>
      <xsl:if test="string(Code) != ''">
        <ArticleIdentifier><xsl:value-of select="Code"/></ArticleIdentifier>
      </xsl:if>
      <ArticleName><xsl:value-of select="substring(Description, 1, 100)"/></ArticleName>
      <xsl:for-each select="Dimensions/Dimension">
        <RowDefinitionDetails>
          <RowDefinitionHeaderText><xsl:value-of select="Name"/></RowDefinitionHeaderText>
          <RowDefinitionValue><xsl:value-of select="Value"/></RowDefinitionValue>
        </RowDefinitionDetails>
      </xsl:for-each>
      <DeliveredQuantity QuantityUnitCode="{Unit}">
        <xsl:value-of select="format-number(Quantity, '0,####', 'fi')"/>
      </DeliveredQuantity>
      <UnitPriceAmount AmountCurrencyIdentifier="{$currency}">
        <xsl:value-of select="format-number(UnitPrice, '0,00##', 'fi')"/>
      </UnitPriceAmount>
      <xsl:if test="string(DeliveryDate) != ''">
        <RowDeliveryDate Format="CCYYMMDD"><xsl:value-of select="translate(DeliveryDate, '-', '')"/></RowDeliveryDate>
      </xsl:if>
      <xsl:if test="string(Waybill) != ''">
        <RowDeliveryDetails>
          <RowWaybillIdentifier><xsl:value-of select="Waybill"/></RowWaybillIdentifier>
        </RowDeliveryDetails>
      </xsl:if>
      <xsl:choose>
        <xsl:when test="string(AccountNumber) = ''"/>
        <xsl:when test="string-length(AccountNumber) &lt;= 4">
          <RowNormalProposedAccountIdentifier><xsl:value-of select="AccountNumber"/></RowNormalProposedAccountIdentifier>
        </xsl:when>
        <xsl:otherwise>
          <RowProposedAccountText><xsl:value-of select="substring(AccountNumber, 1, 35)"/></RowProposedAccountText>
        </xsl:otherwise>
      </xsl:choose>
      <xsl:if test="Dimensions/Dimension">
        <RowAccountDimensionText>
          <xsl:call-template name="dimension-values">
            <xsl:with-param name="dimensions" select="Dimensions/Dimension"/>
          </xsl:call-template>
        </RowAccountDimensionText>
      </xsl:if>
      <!-- ArticleName holds the first 100 characters; a longer description is also written whole. -->
      <xsl:if test="string-length(Description) &gt; 100">
        <xsl:call-template name="pieces">
          <xsl:with-param name="element">RowFreeText</xsl:with-param>
          <xsl:with-param name="text" select="string(Description)"/>
          <xsl:with-param name="size" select="512"/>
        </xsl:call-template>
      </xsl:if>
      <RowVatRatePercent><xsl:value-of select="format-number(VatRate, '0,###', 'fi')"/></RowVatRatePercent>
      <xsl:if test="string(VatCode) != ''">
        <RowVatCode><xsl:value-of select="VatCode"/></RowVatCode>
      </xsl:if>
      <RowVatAmount AmountCurrencyIdentifier="{$currency}">
        <xsl:value-of select="format-number(VatAmount, '0,00', 'fi')"/>
      </RowVatAmount>
      <RowVatExcludedAmount AmountCurrencyIdentifier="{$currency}">
        <xsl:value-of select="format-number(Amount, '0,00', 'fi')"/>
      </RowVatExcludedAmount>
      <RowAmount AmountCurrencyIdentifier="{$currency}">
        <xsl:value-of select="format-number(Amount + VatAmount, '0,00', 'fi')"/>
      </RowAmount>
    </InvoiceRow>
  </xsl:template>

  <xsl:template name="epi-details">
    <EpiDetails>
      <EpiIdentificationDetails>
        <EpiDate Format="CCYYMMDD"><xsl:value-of select="translate(InvoiceDate, '-', '')"/></EpiDate>
        <EpiReference><xsl:value-of select="Number"/></EpiReference>
      </EpiIdentificationDetails>
      <EpiPartyDetails>
        <EpiBfiPartyDetails>
          <EpiBfiIdentifier IdentificationSchemeName="BIC">
            <xsl:value-of select="SellerAccount/Bic"/>
          </EpiBfiIdentifier>
        </EpiBfiPartyDetails>
        <EpiBeneficiaryPartyDetails>
          <EpiNameAddressDetails><xsl:value-of select="substring(Seller/Name, 1, 35)"/></EpiNameAddressDetails>
          <EpiAccountID IdentificationSchemeName="IBAN">
            <xsl:value-of select="SellerAccount/Iban"/>
          </EpiAccountID>
        </EpiBeneficiaryPartyDetails>
      </EpiPartyDetails>
      <xsl:choose>
        <xsl:when test="Type = 'CreditNote'">
      <EpiPaymentInstructionDetails>
        <EpiInstructedAmount AmountCurrencyIdentifier="{$currency}">0,00</EpiInstructedAmount>
        <EpiCharge ChargeOption="SHA">SHA</EpiCharge>
        <EpiDateOptionDate Format="CCYYMMDD"><xsl:value-of select="translate(InvoiceDate, '-', '')"/></EpiDateOptionDate>
      </EpiPaymentInstructionDetails>
        </xsl:when>
        <xsl:otherwise>
      <EpiPaymentInstructionDetails>
        <EpiRemittanceInfoIdentifier>
          <xsl:attribute name="IdentificationSchemeName">
            <xsl:choose>
              <xsl:when test="starts-with(Reference, 'RF')">ISO</xsl:when>
              <xsl:otherwise>SPY</xsl:otherwise>
            </xsl:choose>
          </xsl:attribute>
          <xsl:value-of select="Reference"/>
        </EpiRemittanceInfoIdentifier>
        <EpiInstructedAmount AmountCurrencyIdentifier="{$currency}">
          <xsl:value-of select="format-number(TotalInclVat, '0,00', 'fi')"/>
        </EpiInstructedAmount>
        <EpiCharge ChargeOption="SHA">SHA</EpiCharge>
        <EpiDateOptionDate Format="CCYYMMDD"><xsl:value-of select="translate(DueDate, '-', '')"/></EpiDateOptionDate>
      </EpiPaymentInstructionDetails>
        </xsl:otherwise>
      </xsl:choose>
    </EpiDetails>
  </xsl:template>

  <!-- The dimension values joined by ";", as many whole values as fit in 35 characters. -->
  <xsl:template name="dimension-values">
    <xsl:param name="dimensions"/>
    <xsl:param name="text" select="''"/>
    <xsl:variable name="joined"
        select="concat($text, substring(';', 1, string-length($text)), $dimensions[1]/Value)"/>
    <xsl:choose>
      <xsl:when test="$dimensions and string-length($joined) &lt;= 35">
        <xsl:call-template name="dimension-values">
          <xsl:with-param name="dimensions" select="$dimensions[position() &gt; 1]"/>
          <xsl:with-param name="text" select="$joined"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$text"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!--
    The text in elements of at most $size characters, at most $count of them. A piece
    ends after its last space when it has one, so that words stay whole; the pieces
    joined give the text back (up to what $count leaves out).
  -->
  <xsl:template name="pieces">
    <xsl:param name="element"/>
    <xsl:param name="text"/>
    <xsl:param name="size"/>
    <xsl:param name="count" select="-1"/>
    <xsl:if test="$text != '' and $count != 0">
      <xsl:variable name="space">
        <xsl:if test="string-length($text) &gt; $size and $count != 1
                      and substring($text, $size + 1, 1) != ' '">
          <xsl:call-template name="last-space">
            <xsl:with-param name="text" select="substring($text, 1, $size)"/>
          </xsl:call-template>
        </xsl:if>
      </xsl:variable>
      <xsl:variable name="length">
        <xsl:choose>
          <xsl:when test="number($space) &gt; 0"><xsl:value-of select="$space"/></xsl:when>
          <xsl:otherwise><xsl:value-of select="$size"/></xsl:otherwise>
        </xsl:choose>
      </xsl:variable>
      <xsl:element name="{$element}">
        <xsl:value-of select="substring($text, 1, $length)"/>
      </xsl:element>
      <xsl:call-template name="pieces">
        <xsl:with-param name="element" select="$element"/>
        <xsl:with-param name="text" select="substring($text, $length + 1)"/>
        <xsl:with-param name="size" select="$size"/>
        <xsl:with-param name="count" select="$count - 1"/>
      </xsl:call-template>
    </xsl:if>
  </xsl:template>

  <!-- The position of the last space in $text, 0 when it has none. -->
  <xsl:template name="last-space">
    <xsl:param name="text"/>
    <xsl:param name="offset" select="0"/>
    <xsl:choose>
      <xsl:when test="contains($text, ' ')">
        <xsl:call-template name="last-space">
          <xsl:with-param name="text" select="substring-after($text, ' ')"/>
          <xsl:with-param name="offset"
              select="$offset + string-length(substring-before($text, ' ')) + 1"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$offset"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

</xsl:stylesheet>
